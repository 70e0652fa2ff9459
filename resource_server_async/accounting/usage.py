"""Usage from the request records: requests, tokens and errors summed in the database.

One query for GET /v1/usage and for `manage.py usage_report`, so that both give the same
numbers. A window is whole UTC days, both ends included. Records carry a list of groups; to
sum by group (or keep one group), the database sums by the records' group list and each sum is
then added to every group in its list: the lists are as many as the principals, not the records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from resource_server_async.admission.allocation_ledger import Spent
from resource_server_async.admission.allocation_periods import period_bounds
from resource_server_async.admission.allocation_records import spent_in_records
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.projects import AllocationRule
from resource_server_async.models import ApiKey, RequestRecord

Dimension = Literal["user", "group", "model", "cluster", "day"]
DIMENSIONS: tuple[Dimension, ...] = ("user", "group", "model", "cluster", "day")
FIELDS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "errors")
ALL_PRINCIPALS = "all"

# The column each dimension sums by, in the database.
_COLUMNS: dict[str, str] = {
    "user": "principal_id",
    "group": "groups",
    "model": "model",
    "cluster": "cluster",
    "day": "day",
}


class TooManyRows(Exception):
    """The answer would hold more rows than allowed; narrow the window or the filters."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} rows")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """What to sum: a window of days, whose records, and by what."""

    start: date
    end: date  # included
    by: tuple[Dimension, ...]
    principal_id: str = ALL_PRINCIPALS  # one principal's id, or ALL_PRINCIPALS
    group: str = ""
    cluster: str = ""
    model: str = ""


@dataclass(slots=True)
class UsageRow:
    """One group of records: its key (dimension -> value) and its sums."""

    key: dict[str, str]
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    errors: int = 0
    # For `user` rows: the principal's username (the greatest, if it changed), beside its id.
    username: str = ""

    def add(self, other: dict[str, Any]) -> None:
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + int(other[name] or 0))

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = dict(self.key)
        if "user" in self.key:
            row["username"] = self.username
        row.update({name: getattr(self, name) for name in FIELDS})
        return row


def is_operator(principal: Principal) -> bool:
    """May `principal` read everyone's usage: an API key with the operator scope, or a Globus
    user whose username is that of an active Django staff user (blocking: one small query)."""
    if principal.kind == "api_key":
        _, _, pk = principal.id.partition(":")
        return (
            pk.isdigit()
            and ApiKey.objects.filter(pk=int(pk), operator=True, revoked_at__isnull=True).exists()
        )
    users = get_user_model().objects
    return users.filter(username=principal.username, is_staff=True, is_active=True).exists()


def window_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00 UTC, the day after end 00:00 UTC)."""
    return (
        datetime.combine(start, time.min, tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
    )


def _records(query: UsageQuery) -> QuerySet[RequestRecord]:
    since, until = window_bounds(query.start, query.end)
    records = RequestRecord.objects.filter(received_at__gte=since, received_at__lt=until)
    if query.principal_id != ALL_PRINCIPALS:
        records = records.filter(principal_id=query.principal_id)
    if query.cluster:
        records = records.filter(cluster=query.cluster)
    if query.model:
        records = records.filter(model=query.model)
    return records


def summarize(query: UsageQuery, limit: int | None = None) -> list[UsageRow]:
    """The sums for `query`, sorted by key; TooManyRows past `limit` rows from the database."""
    by_groups = "group" in query.by or bool(query.group)
    columns = [_COLUMNS[d] for d in query.by if d != "group"]
    if by_groups:
        columns.append("groups")
    records = _records(query).order_by()
    if "day" in query.by:
        records = records.annotate(day=TruncDate("received_at"))
    if not columns:
        fetched: list[dict[str, Any]] = [records.aggregate(**_sums())]
    else:
        grouped = records.values(*columns).annotate(**_sums())
        fetched = list(grouped if limit is None else grouped[: limit + 1])
    if limit is not None and len(fetched) > limit:
        raise TooManyRows(limit)
    rows: dict[tuple[str, ...], UsageRow] = {}
    for item in fetched:
        for group in _groups_of(item, query) if by_groups else [""]:
            key: dict[str, str] = {
                d: (group if d == "group" else _text(item[_COLUMNS[d]])) for d in query.by
            }
            identity = tuple(key.values())
            row = rows.get(identity)
            if row is None:
                row = rows[identity] = UsageRow(key=key)
            row.add(item)
            row.username = max(row.username, item["username"] or "")
    if limit is not None and len(rows) > limit:
        raise TooManyRows(limit)
    return [rows[identity] for identity in sorted(rows)]


def _sums() -> dict[str, Any]:
    return {
        "requests": Count("id"),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "total_tokens": Sum("total_tokens"),
        "errors": Count("id", filter=Q(status__gte=400)),
        "username": Max("username"),
    }


def _groups_of(item: dict[str, Any], query: UsageQuery) -> Iterable[str]:
    groups = sorted(set(item["groups"] or ()))
    if query.group:
        return [query.group] if query.group in groups else []
    if "group" in query.by:
        # A record without groups still counts, under the empty group.
        return groups or [""]
    return [""]


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, date) else str(value or "")


def totals(query: UsageQuery) -> dict[str, int]:
    """The sums of every record `query` covers, each counted once (a record in two groups
    appears in both groups' rows, but once here)."""
    rows = summarize(replace(query, by=()))
    return {name: getattr(rows[0], name) if rows else 0 for name in FIELDS}


# --- Allocations (docs/limits.md): spent and remaining in the current period -----------------


def _budget(budget: int | None, spent: float) -> dict[str, Any] | None:
    if budget is None:
        return None
    return {"budget": budget, "spent": spent, "remaining": max(0, budget - spent)}


def allocation_usage(rule: AllocationRule, now: datetime, live: Spent | None) -> dict[str, Any]:
    """One allocation's current period: spent as admission counts it (`live`, reservations of
    requests in flight included), else as the records show it (blocking: a query)."""
    start, end = period_bounds(rule.period, rule.start_day, now)
    spent = live if live is not None else spent_in_records(rule, start, end)
    return {
        "allocation": rule.name,
        "project": rule.project,
        "period": rule.period,
        "start": start.isoformat().replace("+00:00", "Z"),
        "renews_at": end.isoformat().replace("+00:00", "Z"),
        "model": rule.model or None,
        "cluster": rule.cluster or None,
        "tokens": _budget(rule.tokens, spent.tokens),
        "gpu_seconds": _budget(rule.gpu_seconds, round(spent.gpu_seconds, 3)),
    }
