"""`manage.py batch_worker`: run batches (docs/batches.md); SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from resource_server_async.batches.worker import BatchWorker, WorkerSettings
from resource_server_async.runtime import Runtime, installed

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Claim batches and send their lines through the endpoint adapters, until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="exit when no batch is left to work on"
        )

    def handle(self, *args: Any, once: bool, **options: Any) -> None:
        config = WorkerSettings(
            per_endpoint=settings.BATCH_CONCURRENCY_PER_ENDPOINT,
            in_flight=settings.BATCH_MAX_IN_FLIGHT,
            claim_seconds=settings.BATCH_CLAIM_SECONDS,
            poll_seconds=settings.BATCH_POLL_SECONDS,
        )
        asyncio.run(_serve(config, once))


async def _serve(config: WorkerSettings, once: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The API's own resources: upstream sessions, the catalog, the record writer, executors.
    async with installed(Runtime.from_settings()) as runtime:
        runtime.start_records()
        await runtime.start_catalog(settings.CATALOG_REFRESH_SECONDS)
        runtime.start_compute()
        worker = BatchWorker(config)
        logger.info("batch worker %s started", worker.id)
        await worker.run(stop, once=once)
