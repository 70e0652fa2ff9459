"""The charts' aggregations on the database the suite runs on (SQLite or PostgreSQL): bucket
counts, totals matching the records, percentiles from the histogram, the CSV and JSON forms."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from resource_server_async.dashboard import queries
from resource_server_async.dashboard.ranges import RANGES, range_of
from resource_server_async.models import RequestRecord
from tests.dashboard.records import record, store

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clock_and_cache() -> Iterator[None]:
    """Half past an hour, so that the records of "minutes ago" share the last hour's bucket."""
    cache.clear()
    with time_machine.travel(datetime(2026, 6, 15, 12, 30, tzinfo=UTC), tick=False):
        yield


@pytest.fixture
def records() -> list[RequestRecord]:
    rows = [
        record(ago=timedelta(minutes=5), username="alice", model="model-a", duration=0.2),
        record(ago=timedelta(minutes=5), username="alice", model="model-a", duration=0.4),
        record(ago=timedelta(minutes=30), username="bob", model="model-b", cluster="other"),
        record(ago=timedelta(hours=3), username="bob", model="model-b", duration=3.0),
        record(
            ago=timedelta(hours=5), username="alice", model="model-b", status=503,
            error_code="maintenance", duration=0.001, ttft=None,
        ),
        record(ago=timedelta(days=3), username="carol", model="model-a", status=429,
               error_code="rate_limited"),
        record(ago=timedelta(days=40), username="dave", model="model-a"),  # out of every range
    ]  # fmt: skip
    return store(rows)


def test_traffic_counts_every_record_of_the_range_once(records: list[RequestRecord]) -> None:
    expected = {"hour": (3, 0), "day": (5, 1), "month": (6, 2)}
    for key, (requests, errors) in expected.items():
        chart = queries.traffic(RANGES[key])
        assert len(chart.labels) == RANGES[key].buckets
        assert chart.totals() == [requests, errors], key


def test_tokens_and_users(records: list[RequestRecord]) -> None:
    day = RANGES["day"]
    assert queries.tokens(day).totals() == [40, 20]  # four successes of 10 + 5 tokens
    users = queries.active_users(day)
    # Distinct users per bucket: alice and bob share no bucket of the last day but the last.
    assert sum(users.series[0].values) == 4


def test_busiest_users_models_clusters(records: list[RequestRecord]) -> None:
    month = RANGES["month"]
    by_user = queries.by_field(month, "username")
    assert by_user.labels == ["alice", "bob", "carol"]
    assert by_user.series[0].values == [3, 2, 1]
    assert by_user.series[1].values == [1, 0, 1]
    assert queries.by_field(month, "model").labels == ["model-a", "model-b"]
    assert queries.by_field(month, "cluster").series[0].values == [5, 1]


def test_latency_percentiles_from_the_histogram(records: list[RequestRecord]) -> None:
    chart = queries.latency(RANGES["day"], "duration")
    p50, p95 = chart.series
    last = len(chart.labels) - 1
    # The last hour holds 0.2, 0.4 and 0.2 s: p50 in the (0.1, 0.25] bin, p95 in (0.25, 0.5].
    assert p50.values[last] == 0.25 and p95.values[last] == 0.5
    assert max(p95.values) == 4.0  # the 3 s record, three hours ago
    assert queries.latency(RANGES["day"], "time_to_first_token").series[0].values[last] == 0.05


def test_error_groups(records: list[RequestRecord]) -> None:
    chart = queries.error_groups(RANGES["month"])
    assert sorted(chart.labels) == [
        "429 rate_limited local-vllm-model-a",
        "503 maintenance local-vllm-model-b",
    ]
    assert chart.totals() == [2]


def test_an_unknown_range_is_the_default() -> None:
    assert range_of("year; DROP TABLE") is RANGES["day"]


def test_csv_and_json_say_what_the_chart_shows(records: list[RequestRecord]) -> None:
    get_user_model().objects.create_user("ops", password="ops-password-1", is_staff=True)
    client = Client()
    client.post("/dashboard/login/", {"username": "ops", "password": "ops-password-1"})
    body = client.get("/dashboard/data/by_username.json?range=month").json()
    assert body["labels"] == ["alice", "bob", "carol"] and body["totals"] == [6, 2, 60]
    answer = client.get("/dashboard/data/by_username.csv?range=month")
    assert answer["Content-Disposition"].startswith('attachment; filename="by_username-month-')
    rows = list(csv.reader(io.StringIO(answer.content.decode())))
    assert rows[0] == ["label", "requests", "errors", "tokens"]
    assert rows[1] == ["alice", "3.0", "1.0", "30.0"]
    assert client.get("/dashboard/data/nope.json").status_code == 404


def test_csv_cells_cannot_become_formulas(records: list[RequestRecord]) -> None:
    store([record(username="=HYPERLINK(1)", now=timezone.now())])
    text = queries.by_field(RANGES["day"], "username").as_csv()
    assert "'=HYPERLINK(1)" in text


def test_charts_are_cached_a_few_seconds(records: list[RequestRecord]) -> None:
    first = queries.traffic(RANGES["day"]).totals()
    store([record()])
    assert queries.traffic(RANGES["day"]).totals() == first  # the cached aggregate
    cache.clear()
    assert queries.traffic(RANGES["day"]).totals()[0] == first[0] + 1


def test_tables_are_bounded_by_their_settings(settings: Any) -> None:
    """DASHBOARD_TOP_ROWS and DASHBOARD_RECENT_ROWS bound what a page lists, however many
    users and failures there are."""
    settings.DASHBOARD_TOP_ROWS = 3
    settings.DASHBOARD_RECENT_ROWS = 4
    store([record(username=f"user{i}", status=500, error_code=f"code{i}") for i in range(8)])
    day = RANGES["day"]
    assert len(queries.by_field(day, "username").labels) == 3
    assert len(queries.error_groups(day).labels) == 3
    assert len(queries.recent(day, failed=True)) == 4


def test_allocations_spent_and_remaining() -> None:
    from resource_server_async.dashboard.allocations import allocation_rows
    from resource_server_async.models import Allocation, Project

    project = Project.objects.create(name="climate")
    Allocation.objects.create(name="climate-month", project=project, period="month", tokens=100)
    store(
        [
            record(project="climate", prompt=20, completion=10),  # 30 tokens
            record(project="climate", prompt=5, completion=5),  # 10 tokens
            record(project="other", prompt=50, completion=50),  # another project's
            record(project="climate", ago=timedelta(days=40)),  # an earlier month's
        ]
    )
    (row,) = allocation_rows()
    assert row["project"] == "climate" and row["period"] == "2026-06-01 to 2026-07-01"
    assert (row["tokens"], row["tokens_spent"], row["tokens_left"]) == (100, 40, 60)
