"""Line outcomes in the database: written as they arrive, read to resume and to finalize.

The sync functions run in a worker thread; `OutcomeWriter` groups what arrives while one write
is under way into the next (one INSERT), so that a line is stored within about one write's
time of its answer: a worker killed at any moment resends only lines whose answer it never had.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from resource_server_async.batches.database import in_thread
from resource_server_async.batches.line_runner import LineResult
from resource_server_async.models import BatchLine

READ_CHUNK = 2000


def store(batch_id: str, results: list[LineResult]) -> None:
    BatchLine.objects.bulk_create(
        [BatchLine(batch_id=batch_id, line=r.line, ok=r.ok, output=r.output) for r in results],
        # A line stored already (a worker that lost its claim overlapping): the first one stays.
        ignore_conflicts=True,
    )


def counts(batch_id: str) -> tuple[int, int]:
    """(completed, failed) lines stored."""
    lines = BatchLine.objects.filter(batch_id=batch_id)
    ok = lines.filter(ok=True).count()
    return ok, lines.count() - ok


def stored_after(batch_id: str, after: int) -> list[int]:
    """The next numbers of lines with an outcome, past `after`, in order (a chunk)."""
    return list(
        BatchLine.objects.filter(batch_id=batch_id, line__gt=after)
        .order_by("line")
        .values_list("line", flat=True)[:READ_CHUNK]
    )


def outputs(batch_id: str) -> Iterator[tuple[bool, str]]:
    """(ok, line) of every stored outcome, in input order, a chunk at a time."""
    after = 0
    while True:
        chunk = list(
            BatchLine.objects.filter(batch_id=batch_id, line__gt=after)
            .order_by("line")
            .values_list("line", "ok", "output")[:READ_CHUNK]
        )
        if not chunk:
            return
        for _, ok, output in chunk:
            yield ok, output
        after = chunk[-1][0]


class OutcomeWriter:
    """Stores results as they come, group-committed; counts what it stored."""

    def __init__(self, batch_id: str, completed: int, failed: int) -> None:
        self.batch_id = batch_id
        self.completed, self.failed = completed, failed
        self._pending: list[LineResult] = []
        self._arrived = asyncio.Event()
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._write_forever())

    def add(self, result: LineResult) -> None:
        self._pending.append(result)
        self._arrived.set()

    async def _write_forever(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            if self._pending:
                taken, self._pending = self._pending, []
                await in_thread(store, self.batch_id, taken)
                ok = sum(1 for r in taken if r.ok)
                self.completed += ok
                self.failed += len(taken) - ok
            if self._closing and not self._pending:
                return

    async def close(self) -> None:
        """Store everything added so far."""
        self._closing = True
        self._arrived.set()
        await self._task
