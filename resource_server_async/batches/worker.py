"""The batch worker: claims a batch, sends its lines not yet answered, keeps its claim and
progress fresh, stops on cancel or expiry, and finalizes (`manage.py batch_worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

from django.utils import timezone

from resource_server_async.auth.principal import Principal
from resource_server_async.batches import claims, status, storage
from resource_server_async.batches.cluster_run import ClusterBatchRun
from resource_server_async.batches.database import in_thread
from resource_server_async.batches.finalize import finalize
from resource_server_async.batches.input_lines import SERVED_URLS
from resource_server_async.batches.line_runner import LineResult, LineRunner
from resource_server_async.batches.line_store import (
    READ_CHUNK,
    OutcomeWriter,
    counts,
    stored_after,
)
from resource_server_async.models import Batch
from resource_server_async.unique_ids import new_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    per_endpoint: int  # BATCH_CONCURRENCY_PER_ENDPOINT
    in_flight: int  # BATCH_MAX_IN_FLIGHT
    claim_seconds: float  # BATCH_CLAIM_SECONDS
    poll_seconds: float  # BATCH_POLL_SECONDS


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()}"[:64]


class _Stop(Exception):
    """Why the sending stopped early: the status to finish in, or "" for a lost claim."""

    def __init__(self, final: str) -> None:
        self.final = final


class BatchRun:
    """One claimed batch, from where it stands to its final status."""

    def __init__(self, batch: Batch, worker: str, config: WorkerSettings) -> None:
        self.batch = batch
        self.worker = worker
        self.config = config

    async def run(self) -> None:
        batch = self.batch
        if batch.kind == "cluster":
            await ClusterBatchRun(batch, self.worker, self.config.claim_seconds).run()
            return
        if batch.status == status.VALIDATING:
            await in_thread(claims.move, batch.id, self.worker, status.IN_PROGRESS)
            batch = self.batch = await in_thread(Batch.objects.get, pk=batch.id)
        final = {
            status.IN_PROGRESS: None,
            status.FINALIZING: status.COMPLETED,
            status.CANCELLING: status.CANCELLED,
        }.get(batch.status, status.FAILED)
        if final is None:
            final = await self._send_lines()
        if final:
            await in_thread(finalize, batch.id, self.worker, final)
            logger.info("batch %s: %s", batch.id, final)

    async def _send_lines(self) -> str:
        """Send every line without a stored outcome; the final status, or "" (claim lost)."""
        batch = self.batch
        runner = LineRunner(
            Principal.from_dict(batch.principal),
            SERVED_URLS[batch.endpoint],
            self.config.per_endpoint,
        )
        writer = OutcomeWriter(batch.id, *await in_thread(counts, batch.id))
        watch = asyncio.get_running_loop().create_task(self._watch(writer))
        in_flight: set[asyncio.Task[LineResult]] = set()
        room = asyncio.Semaphore(self.config.in_flight)
        try:
            async for number, raw in self._unanswered():
                await room.acquire()
                if watch.done():
                    break
                task = asyncio.create_task(runner.run(number, raw))
                in_flight.add(task)
                task.add_done_callback(lambda t: self._done(t, in_flight, room, writer))
            while in_flight and not watch.done():
                await asyncio.wait([*in_flight, watch], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Stopped (cancel, expiry, lost claim, shutdown): lines still out are not kept.
            for task in list(in_flight):
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            await writer.close()
            if not watch.done():
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
        if watch.cancelled():  # every line sent and answered
            return status.COMPLETED
        stopped = watch.exception()
        if isinstance(stopped, _Stop):
            return stopped.final
        raise RuntimeError(f"batch {batch.id}: the claim watch failed") from stopped

    @staticmethod
    def _done(
        task: asyncio.Task[LineResult],
        in_flight: set[asyncio.Task[LineResult]],
        room: asyncio.Semaphore,
        writer: OutcomeWriter,
    ) -> None:
        in_flight.discard(task)
        room.release()
        if not task.cancelled() and task.exception() is None:
            writer.add(task.result())

    async def _unanswered(self) -> AsyncIterator[tuple[int, bytes]]:
        """(number, bytes) of the input lines without a stored outcome, read as they are sent.
        The stored numbers are read in chunks beside the file: memory does not grow with it."""
        stored: list[int] = []
        position = 0
        exhausted = False
        # A local file read of one buffered line: microseconds, not worth a thread per line.
        with storage.path_of(self.batch.input_file_id).open("rb") as source:
            for number, raw in storage.numbered_lines(source):
                while True:
                    while position < len(stored) and stored[position] < number:
                        position += 1
                    if position < len(stored) or exhausted:
                        break
                    stored = await in_thread(stored_after, self.batch.id, number - 1)
                    position, exhausted = 0, len(stored) < READ_CHUNK
                if position < len(stored) and stored[position] == number:
                    continue
                yield number, raw

    async def _watch(self, writer: OutcomeWriter) -> None:
        """Renew the claim and store progress; raise _Stop on cancel, expiry or a lost claim."""
        interval = min(1.0, self.config.claim_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            standing = await in_thread(
                claims.renew,
                self.batch.id,
                self.worker,
                self.config.claim_seconds,
                writer.completed,
                writer.failed,
            )
            if standing is None:
                logger.warning("batch %s: claim lost; another worker has it", self.batch.id)
                raise _Stop("")
            if standing.status == status.CANCELLING:
                raise _Stop(status.CANCELLED)
            if standing.expires_at <= timezone.now():
                raise _Stop(status.EXPIRED)


class BatchWorker:
    """Claims batches one after another until `stop` is set (or, with `once`, none is left)."""

    def __init__(self, config: WorkerSettings) -> None:
        self.config = config
        self.id = worker_id()

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> None:
        while not stop.is_set():
            batch = await in_thread(claims.claim_next, self.id, self.config.claim_seconds)
            if batch is None:
                if once:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_seconds)
                continue
            running = asyncio.create_task(BatchRun(batch, self.id, self.config).run())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not running.done():
                # Stopped: what was stored stays; the claim is released for the next worker.
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                await in_thread(claims.release, batch.id, self.id)
            elif (error := running.exception()) is not None:
                # Failed, not released: another claim would fail the same way, forever.
                logger.error("batch %s failed", batch.id, exc_info=error)
                await in_thread(
                    claims.move,
                    batch.id,
                    self.id,
                    status.FAILED,
                    errors=_errors(batch, f"The batch could not run: {error}"),
                    claimed_by="",
                    claim_expires_at=None,
                )


def _errors(batch: Batch, message: str) -> dict[str, object]:
    """A failed batch's `errors`, in the shape of the API that made it."""
    if batch.kind == "cluster":
        return {"message": message[:4000]}
    return {"object": "list", "data": [{"code": "batch_failed", "message": message[:4000]}]}
