"""The record writer: finished requests queued in memory, inserted in batches by one task.

`submit` (an accounting sink) only appends to a bounded queue. The writer task takes up to
RECORD_BATCH_SIZE records at a time and inserts them with one multi-row INSERT in its own
thread (Django's ORM is synchronous). While the database is down, records wait in the queue;
past half of it, the oldest go to the spool file (accounting/spool.py) and are inserted once the
database is back. Each record has a unique key and inserts ignore conflicts, so a batch that was
committed but whose answer was lost is not written twice. What cannot be kept (the queue full,
the spool full) is dropped, counted in `stats.dropped` and logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.accounting.spool import Spool

logger = logging.getLogger(__name__)

# Fields of RequestRecord copied from the outcome as they are.
_PLAIN_FIELDS = (
    "request_id",
    "route",
    "operation",
    "client_address",
    "principal_id",
    "username",
    "idp_domain",
    "credential",
    "api_key_id",
    "cluster",
    "framework",
    "model",
    "endpoint_slug",
    "stream",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "usage_estimated",
    "compute_task_id",
    "response_time",
    "throughput_tokens_per_second",
    "disconnected",
    "prompt",
    "answer",
)
_DROP_LOG_SECONDS = 60.0


@dataclass(slots=True)
class WriterStats:
    """Counts since the process started (for metrics)."""

    written: int = 0
    spooled: int = 0
    dropped: int = 0


def as_row(outcome: RequestOutcome, key: str) -> dict[str, Any]:
    """The record as plain JSON-able values (what the spool file holds, one per line)."""
    row = {name: getattr(outcome, name) for name in _PLAIN_FIELDS}
    row["request_key"] = key
    row["received_at"] = outcome.received_at
    row["groups"] = sorted(outcome.groups)
    row["duration"] = outcome.duration
    row["upstream_duration"] = outcome.upstream_duration
    row["time_to_first_token"] = outcome.time_to_first_token
    return row


def insert_rows(rows: list[dict[str, Any]]) -> None:
    """One multi-row INSERT; rows already there (same request_key) are skipped."""
    from django.db import close_old_connections, connection

    from resource_server_async.models import RequestRecord

    records = [
        RequestRecord(**{**row, "received_at": datetime.fromtimestamp(row["received_at"], UTC)})
        for row in rows
    ]
    try:
        RequestRecord.objects.bulk_create(records, ignore_conflicts=True)
    except Exception:
        # A broken connection is not reused for the next attempt.
        with contextlib.suppress(Exception):
            connection.close()
        raise
    finally:
        close_old_connections()


class RecordWriter:
    """Queue, writer task, spool. One per process, owned by the Runtime."""

    def __init__(
        self,
        *,
        queue_size: int,
        batch_size: int,
        retry_seconds: float,
        spool_dir: Path,
        spool_max_bytes: int,
        shutdown_seconds: float,
    ) -> None:
        self.stats = WriterStats()
        self._queue: deque[tuple[RequestOutcome, str]] = deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._retry_seconds = retry_seconds
        self._shutdown_seconds = shutdown_seconds
        self._spool = Spool(spool_dir, spool_max_bytes)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # One thread: the database connection is the writer's own and stays open.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="record-writer")
        self._keys = _KeyMaker()
        self._last_drop_log = -_DROP_LOG_SECONDS
        self._unlogged_drops = 0

    @classmethod
    def from_settings(cls) -> RecordWriter:
        from django.conf import settings

        return cls(
            queue_size=settings.RECORD_QUEUE_SIZE,
            batch_size=settings.RECORD_BATCH_SIZE,
            retry_seconds=settings.RECORD_RETRY_SECONDS,
            spool_dir=settings.RECORD_SPOOL_DIR,
            spool_max_bytes=settings.RECORD_SPOOL_MAX_BYTES,
            shutdown_seconds=settings.RECORD_SHUTDOWN_SECONDS,
        )

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- the request side ----------------------------------------------------------------

    def submit(self, outcome: RequestOutcome) -> None:
        """Queue a finished request; never blocks (a full queue drops it, counted)."""
        if len(self._queue) >= self._queue_size:
            self._dropped(1)
            return
        self._queue.append((outcome, self._keys.next()))
        if not self._wake.is_set():
            self._wake.set()

    # --- the writer task -----------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="record-writer")

    async def _run(self) -> None:
        healthy = await self._drain_spool()
        while not self._stopping:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if await self._write_batch():
                if not healthy:
                    healthy = await self._drain_spool()
                continue
            healthy = False
            await self._spool_overflow()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested(), self._retry_seconds)

    async def _stop_requested(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._wake.wait()

    def _take(self, count: int) -> list[tuple[RequestOutcome, str]]:
        return [self._queue.popleft() for _ in range(min(count, len(self._queue)))]

    async def _write_batch(self) -> bool:
        """Insert the oldest batch; on failure it goes back to the front of the queue."""
        batch = self._take(self._batch_size)
        rows = [as_row(outcome, key) for outcome, key in batch]
        try:
            await self._in_thread(insert_rows, rows)
        except Exception as exc:
            self._queue.extendleft(reversed(batch))
            logger.warning("records: the database refused a batch (%s); retrying", _short(exc))
            return False
        self.stats.written += len(rows)
        return True

    async def _spool_overflow(self) -> None:
        """While the database is down, keep the queue at half its size: the oldest go to disk."""
        excess = len(self._queue) - self._queue_size // 2
        if excess > 0:
            await self._spool_out(self._take(excess))

    async def _spool_out(self, batch: list[tuple[RequestOutcome, str]]) -> None:
        rows = [as_row(outcome, key) for outcome, key in batch]
        kept = await self._in_thread(self._spool.append, rows)
        self.stats.spooled += kept
        if kept < len(rows):
            self._dropped(len(rows) - kept)

    async def _drain_spool(self) -> bool:
        """Insert what earlier runs (or this one) spooled; False while the database is down."""
        try:
            written = await self._in_thread(self._spool.drain, insert_rows, self._batch_size)
        except Exception as exc:
            logger.warning("records: spooled records wait for the database (%s)", _short(exc))
            return False
        self.stats.written += written
        return True

    async def _in_thread(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    def _dropped(self, count: int) -> None:
        self.stats.dropped += count
        self._unlogged_drops += count
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_SECONDS:
            logger.error(
                "records: %d request records dropped (queue and spool full; "
                "RECORD_QUEUE_SIZE, RECORD_SPOOL_MAX_BYTES)",
                self._unlogged_drops,
            )
            self._last_drop_log, self._unlogged_drops = now, 0

    # --- shutdown ------------------------------------------------------------------------

    async def close(self) -> None:
        """Write what is queued (RECORD_SHUTDOWN_SECONDS at most), spool the rest."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        deadline = time.monotonic() + self._shutdown_seconds
        while self._queue and time.monotonic() < deadline:
            if not await self._write_batch():
                break
        if self._queue:
            await self._spool_out(self._take(len(self._queue)))
        await self._in_thread(_close_connection)
        self._thread.shutdown(wait=True)


def _close_connection() -> None:
    """The writer thread's database connection, closed with it."""
    from django.db import connection

    with contextlib.suppress(Exception):
        connection.close()


class _KeyMaker:
    """Unique record keys: this process's random prefix and a counter (cheaper than uuid4)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"{self._prefix}-{self._count}"


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
