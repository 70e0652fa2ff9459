"""The roll-up the record writer keeps (UsageHour, UsageDay, LatencyHour) equals the records summed,
on the suite's database (SQLite or PostgreSQL): after batches, a batch written twice, a spool
replayed, the backfill, and purge_records with its two retentions."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.accounting.rollup import rebuild
from resource_server_async.accounting.rows import as_row, insert_rows
from resource_server_async.accounting.spool import Spool
from resource_server_async.models import LatencyHour, RequestRecord, UsageHour
from tests.accounting.rollup_check import assert_rollup_matches_records, kept_usage

pytestmark = pytest.mark.django_db(transaction=True)

_numbers = itertools.count()


def _rows(count: int, *, hours_ago: float = 0.0, prefix: str = "") -> list[dict[str, Any]]:
    """Records of two users, two models, two projects; every fifth failed, every third with no
    time to first token; spread over the hour `hours_ago` and the two before it."""
    now = time.time() - hours_ago * 3600
    rows = []
    for i in range(count):
        n = next(_numbers)
        outcome = RequestOutcome(
            request_id=f"{prefix}r{n}",
            received_at=now - (i % 3) * 3600,
            started=0.0,
            route="cluster",
            operation="chat/completions",
            principal_id=f"id-{i % 2}",
            username=f"user{i % 2}@example.org",
            project=f"project-{i % 2}",
            cluster="alpha",
            framework="vllm",
            model=f"model-{i % 4 // 2}",
            endpoint_slug=f"alpha-vllm-model-{i % 4 // 2}",
            status=502 if i % 5 == 0 else 200,
            error_code="upstream_error" if i % 5 == 0 else "",
        )
        if i % 5:
            outcome.set_usage(10 + i, 3 + i)
        outcome.ended = 0.003 * (i + 1) * (i + 1)  # durations over most bins, past the last
        if i % 3:
            outcome.first_byte = outcome.ended / 4
        rows.append(as_row(outcome, f"{prefix}key-{n}"))
    return rows


def test_batches_add_up_and_a_batch_written_twice_counts_once() -> None:
    insert_rows(_rows(40))
    insert_rows(_rows(25))
    assert_rollup_matches_records()
    batch = _rows(30)
    insert_rows(batch[:10])  # committed, its answer lost: the writer sends all of it again
    insert_rows(batch)
    insert_rows(batch)
    assert RequestRecord.objects.count() == 95
    assert_rollup_matches_records()
    assert sum(row.request_count for row in UsageHour.objects.all()) == 95


def test_a_spool_replayed_after_an_outage_counts_each_record_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1024 * 1024)
    rows = _rows(60, prefix="spooled-")
    insert_rows(rows[:20])  # written before the outage; spooled again when an answer was lost
    assert spool.append(rows) == 60
    assert spool.drain(insert_rows, 25) == 60
    assert RequestRecord.objects.count() == 60
    assert_rollup_matches_records()


def test_the_backfill_makes_the_roll_up_the_writer_keeps() -> None:
    insert_rows(_rows(50))
    kept = kept_usage(), kept_usage(period="day")
    latency = sorted(LatencyHour.objects.values_list("hour", "measure", "bin", "count"))
    rebuild()  # what the migration runs over the records already there
    assert (kept_usage(), kept_usage(period="day")) == kept
    assert sorted(LatencyHour.objects.values_list("hour", "measure", "bin", "count")) == latency


def test_purge_keeps_the_roll_up_past_the_records_until_its_own_retention(
    capsys: pytest.CaptureFixture,
) -> None:
    insert_rows(_rows(30, hours_ago=24 * 50))  # 50 days ago
    insert_rows(_rows(30, hours_ago=24 * 5))
    insert_rows(_rows(30))
    before = kept_usage(), kept_usage(period="day")
    call_command("purge_records", "--days", "30", "--rollup-days", "90", "--batch", "7")
    assert RequestRecord.objects.count() == 60
    assert (kept_usage(), kept_usage(period="day")) == before  # 50 days ago is summed still
    recent = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=29)
    assert_rollup_matches_records(since=recent)
    call_command("purge_records", "--days", "30", "--rollup-days", "40")
    assert_rollup_matches_records()  # the roll-up is as long as the records now
    # A roll-up retention shorter than the records' is the records': no kept record loses it.
    call_command("purge_records", "--days", "30", "--rollup-days", "1")
    assert_rollup_matches_records()
    out = capsys.readouterr().out
    assert "Deleted 30 request records" in out and "roll-up rows of hours before" in out


def test_the_migration_fills_the_roll_up_from_the_records_already_there() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    app = "resource_server_async"
    executor = MigrationExecutor(connection)
    executor.migrate([(app, "0011_personal_keys")])  # before the roll-up existed
    insert_rows_without_rollup(_rows(40))
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes(app))
    assert RequestRecord.objects.count() == 40
    assert_rollup_matches_records()


def insert_rows_without_rollup(rows: list[dict[str, Any]]) -> None:
    """Records as a gateway before the roll-up wrote them (through the ORM, as plain rows)."""
    RequestRecord.objects.bulk_create(
        RequestRecord(
            **{name: value for name, value in row.items() if name != "received_at"},
            received_at=datetime.fromtimestamp(row["received_at"], UTC),
        )
        for row in rows
    )
