"""The usage sums in the database: windows of whole UTC days, grouping, groups, bounds; and
`usage_report`, which must print the same numbers."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from resource_server_async.accounting import usage
from resource_server_async.auth.api_keys import create_key
from resource_server_async.auth.principal import Principal
from tests.usage.records import record

pytestmark = pytest.mark.django_db

DAY = date(2026, 11, 2)


def at(day: date, hour: int = 12, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=UTC)


def sums(query: usage.UsageQuery) -> list[dict[str, object]]:
    return [row.as_dict() for row in usage.summarize(query)]


def test_a_window_is_whole_utc_days_with_both_ends_included() -> None:
    record(at(DAY - timedelta(days=1), 23, 59, 59, 999_999))  # the evening before: out
    record(at(DAY, 0, 0, 0))  # first instant of the first day: in
    record(at(DAY + timedelta(days=1), 23, 59, 59, 999_999))  # last instant of the last: in
    record(at(DAY + timedelta(days=2), 0, 0, 0))  # the day after: out
    query = usage.UsageQuery(start=DAY, end=DAY + timedelta(days=1), by=("day",))
    assert [(row["day"], row["requests"]) for row in sums(query)] == [
        ("2026-11-02", 1),
        ("2026-11-03", 1),
    ]


def test_sums_per_model_and_day_with_errors_and_missing_usage() -> None:
    record(at(DAY, 9), model="model-a")
    record(
        at(DAY, 10),
        model="model-a",
        status=502,
        prompt_tokens=None,
        completion_tokens=None,
        total_tokens=None,
    )
    record(at(DAY, 11), model="model-b", prompt_tokens=100, completion_tokens=1, total_tokens=101)
    record(at(DAY, 12), model="model-a", status=401, principal_id="", username="")
    query = usage.UsageQuery(start=DAY, end=DAY, by=("day", "model"), principal_id="alice-id")
    assert sums(query) == [
        {"day": "2026-11-02", "model": "model-a", "requests": 2, "prompt_tokens": 10,
         "completion_tokens": 5, "total_tokens": 15, "errors": 1},
        {"day": "2026-11-02", "model": "model-b", "requests": 1, "prompt_tokens": 100,
         "completion_tokens": 1, "total_tokens": 101, "errors": 0},
    ]  # fmt: skip
    assert usage.totals(query) == {
        "requests": 3, "prompt_tokens": 110, "completion_tokens": 6, "total_tokens": 116,
        "errors": 1,
    }  # fmt: skip


def test_by_group_a_record_counts_in_each_of_its_groups_and_once_in_the_total() -> None:
    record(at(DAY), groups=["physics", "hpc"])
    record(at(DAY), groups=["hpc", "physics"], principal_id="bob-id", username="bob")
    record(at(DAY), groups=["chem"], principal_id="carol-id", username="carol")
    record(at(DAY), groups=[], principal_id="dan-id", username="dan")
    query = usage.UsageQuery(start=DAY, end=DAY, by=("group",))
    assert [(row["group"], row["requests"]) for row in sums(query)] == [
        ("", 1),
        ("chem", 1),
        ("hpc", 2),
        ("physics", 2),
    ]
    assert usage.totals(query)["requests"] == 4
    one_group = usage.UsageQuery(start=DAY, end=DAY, by=("user",), group="physics")
    assert [(row["user"], row["username"], row["requests"]) for row in sums(one_group)] == [
        ("alice-id", "alice@example.org", 1),
        ("bob-id", "bob", 1),
    ]
    assert usage.totals(one_group)["requests"] == 2


def test_filters_by_principal_cluster_and_model() -> None:
    record(at(DAY), cluster="alpha", model="model-a")
    record(at(DAY), cluster="beta", model="model-a")
    record(at(DAY), cluster="beta", model="model-b", principal_id="bob-id")
    query = usage.UsageQuery(start=DAY, end=DAY, by=("cluster",), cluster="beta")
    assert [(row["cluster"], row["requests"]) for row in sums(query)] == [("beta", 2)]
    query = usage.UsageQuery(start=DAY, end=DAY, by=("model",), principal_id="bob-id")
    assert [(row["model"], row["requests"]) for row in sums(query)] == [("model-b", 1)]


def test_more_rows_than_allowed_is_refused_not_cut() -> None:
    for offset in range(4):
        record(at(DAY + timedelta(days=offset)))
    query = usage.UsageQuery(start=DAY, end=DAY + timedelta(days=3), by=("day",))
    assert len(usage.summarize(query, limit=4)) == 4
    with pytest.raises(usage.TooManyRows):
        usage.summarize(query, limit=3)


def test_operators_are_operator_keys_and_staff_users() -> None:
    _, plain = create_key("plain")
    _, operator = create_key("ops", operator=True)
    users = get_user_model().objects
    users.create_user("staff@example.org", is_staff=True)
    users.create_user("user@example.org", is_staff=False)

    def key(pk: int) -> Principal:
        return Principal(id=f"api_key:{pk}", username="k", kind="api_key")

    def user(name: str) -> Principal:
        return Principal(id="globus-id", username=name, kind="user")

    assert usage.is_operator(key(operator))
    assert not usage.is_operator(key(plain))
    assert usage.is_operator(user("staff@example.org"))
    assert not usage.is_operator(user("user@example.org"))
    assert not usage.is_operator(user("nobody@example.org"))


def report(*args: str) -> str:
    out = io.StringIO()
    call_command("usage_report", *args, stdout=out)
    return out.getvalue()


def test_usage_report_prints_the_query_s_numbers_in_each_format() -> None:
    record(at(DAY), groups=["hpc"])
    record(at(DAY), model="model-b", prompt_tokens=7, completion_tokens=3, total_tokens=10)
    record(at(DAY), principal_id="bob-id", username="bob", status=500, groups=["hpc"])
    record(at(DAY + timedelta(days=40)))  # outside the month
    window = ["--since", "2026-11-01", "--until", "2026-11-30"]
    query = usage.UsageQuery(start=date(2026, 11, 1), end=date(2026, 11, 30), by=("user",))
    expected = sums(query)

    document = json.loads(report(*window, "--by", "user", "--format", "json"))
    assert document["data"] == expected
    assert document["total"] == usage.totals(query)
    assert document["total"]["requests"] == 3

    rows = list(csv.DictReader(io.StringIO(report(*window, "--format", "csv"))))
    assert [{k: str(v) for k, v in row.items()} for row in expected] == rows

    table = report(*window, "--by", "model", "--by", "day").splitlines()
    assert table[0].split() == ["model", "day", *usage.FIELDS]
    assert table[2].split() == ["model-a", "2026-11-02", "2", "20", "10", "30", "1"]
    assert table[3].split() == ["model-b", "2026-11-02", "1", "7", "3", "10", "0"]
    assert table[-1].split() == ["total", "3", "27", "13", "40", "1"]


def test_usage_report_refuses_a_reversed_window() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--since is after --until"):
        report("--since", "2026-11-30", "--until", "2026-11-01")
