"""The record writer's bounds and guarantees, on the suite's database (SQLite or PostgreSQL):
the queue's bound, the spool's bound, no record written twice, and purge_records. A real
database outage: test_writer_outage.py."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from resource_server_async.accounting import account_once_settled
from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.accounting.rows import as_row, insert_rows
from resource_server_async.accounting.spool import Spool
from resource_server_async.accounting.writer import RecordWriter
from resource_server_async.models import RequestRecord
from resource_server_async.runtime import Runtime, installed
from tests.waiting import wait_until_async

pytestmark = pytest.mark.django_db(transaction=True)


def _outcome(index: int, received_at: float | None = None) -> RequestOutcome:
    now = time.perf_counter()
    outcome = RequestOutcome(
        request_id=f"r{index}",
        received_at=received_at if received_at is not None else time.time(),
        started=now,
        route="cluster",
        operation="chat/completions",
        status=200,
    )
    outcome.ended = now + 0.01
    return outcome


def _writer(tmp_path: Path, **overrides: object) -> RecordWriter:
    options: dict = {
        "queue_size": 100,
        "batch_size": 10,
        "retry_seconds": 0.05,
        "spool_dir": tmp_path / "spool",
        "spool_max_bytes": 1024 * 1024,
        "shutdown_seconds": 5.0,
        **overrides,
    }
    return RecordWriter(**options)


async def test_the_queue_and_its_overflow_are_bounded_and_what_they_drop_is_counted(
    tmp_path: Path,
) -> None:
    writer = _writer(tmp_path, queue_size=25)  # not started: nothing leaves the queue
    for index in range(60):
        writer.submit(_outcome(index))
    assert writer.queued == 25 and writer.stats.dropped == 10  # 25 queued, 25 overflow
    await writer.close()  # the queue flushed at shutdown, the overflow spooled
    assert writer.stats.written == 25 and writer.stats.spooled == 25
    assert await RequestRecord.objects.acount() == 25
    spooled = _writer(tmp_path)
    spooled.start()  # a new process drains what the last one spooled
    await wait_until_async(lambda: spooled.stats.written == 25)
    await spooled.close()
    assert await RequestRecord.objects.acount() == 50


async def test_a_burst_while_the_spool_drains_goes_to_the_spool_not_dropped(
    tmp_path: Path,
) -> None:
    """After an outage the writer drains the spool; a burst larger than the queue that comes
    meanwhile overflows to the spool, and every record of it arrives."""
    spooled = 3000
    spool = Spool(tmp_path / "spool", max_bytes=64 * 1024 * 1024)
    assert spool.append([as_row(_outcome(i), f"old-{i}") for i in range(spooled)]) == spooled
    writer = _writer(tmp_path, queue_size=20, batch_size=10)
    writer.start()
    await wait_until_async(lambda: list((tmp_path / "spool").glob("*.draining")))
    # At once, twice the queue (the queue and its overflow); then seven times it as requests
    # come, a few at a time while the overflow has room (its task spools it meanwhile).
    at_once, paced = 40, 150
    for index in range(at_once):
        writer.submit(_outcome(index))
    assert writer.stats.dropped == 0 and writer.queued == 20 and writer.overflowing == 20
    for index in range(at_once, at_once + paced):
        if index % 5 == 0:
            await wait_until_async(lambda: writer.overflowing <= 15)
        writer.submit(_outcome(index))
    burst = at_once + paced
    assert writer.stats.dropped == 0
    await wait_until_async(lambda: writer.stats.spooled > 0)
    await wait_until_async(lambda: writer.stats.written == spooled + burst, timeout=60)
    await writer.close()
    assert writer.stats.dropped == 0
    assert await RequestRecord.objects.acount() == spooled + burst


async def test_records_written_in_batches_by_the_writer_task(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.start()
    for index in range(35):
        writer.submit(_outcome(index))
    await writer.close()
    assert writer.stats.written == 35 and writer.stats.dropped == 0
    record = await RequestRecord.objects.aget(request_id="r7")
    assert record.status == 200 and record.duration == pytest.approx(0.01, abs=1e-6)


def test_a_batch_inserted_twice_is_written_once() -> None:
    rows = [as_row(_outcome(index), f"key-{index}") for index in range(5)]
    insert_rows(rows)
    insert_rows(rows)  # a retry after a commit whose answer was lost
    assert RequestRecord.objects.count() == 5


def test_the_spool_is_bounded_in_bytes(tmp_path: Path) -> None:
    rows = [as_row(_outcome(index), f"key-{index}") for index in range(200)]
    spool = Spool(tmp_path / "spool", max_bytes=20_000)
    kept = spool.append(rows)
    assert 0 < kept < 200
    assert spool.size() <= 20_000
    assert spool.append(rows) == 0  # full
    written = spool.drain(insert_rows, 50)
    assert written == kept == RequestRecord.objects.count()
    assert spool.size() == 0 and not list((tmp_path / "spool").iterdir())


def test_purge_records_deletes_what_is_past_the_retention(capsys: pytest.CaptureFixture) -> None:
    old = (datetime.now(UTC) - timedelta(days=40)).timestamp()
    insert_rows([as_row(_outcome(index, old), f"old-{index}") for index in range(12)])
    insert_rows([as_row(_outcome(index), f"new-{index}") for index in range(3)])
    call_command("purge_records", "--days", "30", "--batch", "5")
    assert RequestRecord.objects.count() == 3
    assert "Deleted 12" in capsys.readouterr().out


async def test_shutdown_waits_for_a_record_still_settling(settings: Any, tmp_path: Path) -> None:
    """A compute stream's record waits for its task's result after the answer ended; a
    shutdown in that time waits for it (STREAMING_RESULT_WAIT_SECONDS at most), then flushes."""
    settings.RECORDS_ENABLED = True
    settings.RECORD_SPOOL_DIR = tmp_path / "spool"
    settings.STREAMING_RESULT_WAIT_SECONDS = 10.0
    loop = asyncio.get_running_loop()
    async with installed(Runtime.from_settings()):
        settling: asyncio.Future[None] = loop.create_future()
        account_once_settled(_outcome(1), settling)
        # The task's result comes after the shutdown began (the runtime closes on leaving).
        loop.call_later(0.2, settling.set_result, None)
    assert settling.done()
    assert await RequestRecord.objects.filter(request_id="r1").acount() == 1
