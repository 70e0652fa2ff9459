"""The record writer: finished requests queued in memory, inserted in batches by one task.

`submit` (an accounting sink) only appends to a bounded queue. The writer task lets a batch
gather (_GATHER_SECONDS), takes up to RECORD_BATCH_SIZE records and inserts them in its own
thread (accounting/rows.py): an insert costs ~200 µs of CPU however few records it holds, so
inserting each record as it comes cost more than everything else accounting does. While the
database is down, records wait in the queue; past half of it, the oldest go to the spool file
(accounting/spool.py) and are inserted once the database is back. Records that find the queue
full (a burst while the writer drains the spool after an outage) wait in an overflow of the
same size, which a task of its own writes to the spool in a thread of its own, so that nothing
is dropped while the spool has room. Each record has a unique key and inserts ignore
conflicts, so a batch that was committed but whose answer was lost is not written twice. What
cannot be kept (queue and overflow full, the spool full) is dropped, counted in
`stats.dropped` and logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.accounting.rows import as_row, insert_rows
from resource_server_async.accounting.spool import Spool
from resource_server_async.unique_ids import new_id

logger = logging.getLogger(__name__)

_DROP_LOG_SECONDS = 60.0
# How long the writer lets a batch gather before inserting it: records reach the database this
# much later, and an insert holds tens of records instead of one or two. Each insert costs its
# thread hand-off and round trips whatever it holds: at one request at a time (30-40 a second
# on the Compute path), gathering 0.1 s made an insert per 3-4 requests, ~0.45 ms of CPU per
# request more than gathering a second (bench.compute, c=1).
_GATHER_SECONDS = 1.0


@dataclass(slots=True)
class WriterStats:
    """Counts since the process started (for metrics)."""

    written: int = 0
    spooled: int = 0
    dropped: int = 0


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
        settle_seconds: float = 0.0,
    ) -> None:
        self.stats = WriterStats()
        self._queue: deque[tuple[RequestOutcome, str]] = deque()
        # Records that found the queue full, on their way to the spool (at most queue_size).
        self._overflow: deque[tuple[RequestOutcome, str]] = deque()
        self._overflowing = asyncio.Event()
        self._spooler: asyncio.Task[None] | None = None
        # Set when records went to the spool while the database was up: drain it again.
        self._spooled_since_drain = False
        self._stop = asyncio.Event()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._retry_seconds = retry_seconds
        self._shutdown_seconds = shutdown_seconds
        self._settle_seconds = settle_seconds
        self._spool = Spool(spool_dir, spool_max_bytes)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # One thread: the database connection is the writer's own and stays open.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="record-writer")
        # The spool's own: it writes the overflow while the other one drains the spool.
        self._spool_thread = ThreadPoolExecutor(1, thread_name_prefix="record-spool")
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
            # A compute stream's record waits this long at most for its task's result.
            settle_seconds=settings.STREAMING_RESULT_WAIT_SECONDS,
        )

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def overflowing(self) -> int:
        """Records that found the queue full, not spooled yet."""
        return len(self._overflow)

    # --- the request side ----------------------------------------------------------------

    def submit(self, outcome: RequestOutcome) -> None:
        """Queue a finished request; never blocks. A full queue sends it to the spool through
        the overflow; a full overflow drops it (counted)."""
        if len(self._queue) < self._queue_size:
            self._queue.append((outcome, new_id()))
            if not self._wake.is_set():
                self._wake.set()
        elif len(self._overflow) < self._queue_size:
            self._overflow.append((outcome, new_id()))
            if not self._overflowing.is_set():
                self._overflowing.set()
        else:
            self._dropped(1)

    # --- the writer task -----------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="record-writer")
        self._spooler = loop.create_task(self._spool_overflowing(), name="record-spooler")

    async def _run(self) -> None:
        healthy = await self._drain_spool()
        while not self._stopping:
            if healthy and self._spooled_since_drain:
                self._spooled_since_drain = False
                healthy = await self._drain_spool()
                continue
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if len(self._queue) < self._batch_size:
                await self._stopped_within(_GATHER_SECONDS)
            if await self._write_batch():
                if not healthy:
                    self._spooled_since_drain = False
                    healthy = await self._drain_spool()
                continue
            healthy = False
            await self._spool_overflow()
            await self._stopped_within(self._retry_seconds)

    async def _stopped_within(self, seconds: float) -> None:
        """Wait `seconds`, less if the writer is being closed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _spool_overflowing(self) -> None:
        """The overflow's task: what found the queue full goes to the spool as it comes."""
        while not self._stopping:
            await self._overflowing.wait()
            self._overflowing.clear()
            await self._spool_out(self._take_overflow())

    def _take_overflow(self) -> list[tuple[RequestOutcome, str]]:
        taken = list(self._overflow)
        self._overflow.clear()
        return taken

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
        if not batch:
            return
        rows = [as_row(outcome, key) for outcome, key in batch]
        loop = asyncio.get_running_loop()
        kept = await loop.run_in_executor(self._spool_thread, self._spool.append, rows)
        self.stats.spooled += kept
        self._spooled_since_drain = True
        self._wake.set()  # the writer drains it once the database answers
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
        """Wait for the records still being completed (settle_seconds at most), write what is
        queued (RECORD_SHUTDOWN_SECONDS at most), spool the rest."""
        from resource_server_async.accounting import settle

        await settle(self._settle_seconds)
        self._stopping = True
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._spooler is not None:
            self._overflowing.set()
            with contextlib.suppress(Exception):
                await self._spooler
        deadline = time.monotonic() + self._shutdown_seconds
        while self._queue and time.monotonic() < deadline:
            if not await self._write_batch():
                break
        if self._queue:
            await self._spool_out(self._take(len(self._queue)))
        await self._spool_out(self._take_overflow())
        await self._in_thread(_close_connection)
        self._thread.shutdown(wait=True)
        self._spool_thread.shutdown(wait=True)


def _close_connection() -> None:
    """The writer thread's database connection, closed with it."""
    from django.db import connection

    with contextlib.suppress(Exception):
        connection.close()


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]
