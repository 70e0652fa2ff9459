"""The record writer's bounds and guarantees, on the suite's database (SQLite or PostgreSQL):
the queue's bound, the spool's bound, no record written twice, and purge_records. A real
database outage: test_writer_outage.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command

from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.accounting.spool import Spool
from resource_server_async.accounting.writer import RecordWriter, as_row, insert_rows
from resource_server_async.models import RequestRecord

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


async def test_the_queue_is_bounded_and_what_it_drops_is_counted(tmp_path: Path) -> None:
    writer = _writer(tmp_path, queue_size=25)  # not started: nothing leaves the queue
    for index in range(40):
        writer.submit(_outcome(index))
    assert writer.queued == 25 and writer.stats.dropped == 15
    await writer.close()  # flushed at shutdown
    assert writer.stats.written == 25
    assert await RequestRecord.objects.acount() == 25


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
