"""The roll-up as it should be: the records summed in Python, to compare with the tables the
writer (or the backfill) kept."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from resource_server_async.accounting.rollup import LATENCY_BINS, LATENCY_MEASURES
from resource_server_async.models import (
    USAGE_DIMENSIONS,
    LatencyHour,
    RequestRecord,
    UsageDay,
    UsageHour,
)

_SUMS = ("request_count", "prompt_tokens", "completion_tokens", "total_tokens", "duration_sum",
         "duration_count", "ttft_sum", "ttft_count")  # fmt: skip


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _start(moment: datetime, period: str) -> datetime:
    return _hour(moment) if period == "hour" else _hour(moment).replace(hour=0)


def expected_usage(
    since: datetime | None = None, period: str = "hour"
) -> dict[tuple[Any, ...], tuple[float, ...]]:
    sums: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0] * len(_SUMS))
    for record in RequestRecord.objects.all():
        start = _start(record.received_at, period)
        if since is not None and start < since:
            continue
        key = (start, *(getattr(record, n) for n in USAGE_DIMENSIONS))
        row = sums[key]
        row[0] += 1
        row[1] += record.prompt_tokens or 0
        row[2] += record.completion_tokens or 0
        row[3] += record.total_tokens or 0
        if record.duration is not None:
            row[4] += record.duration
            row[5] += 1
        if record.time_to_first_token is not None:
            row[6] += record.time_to_first_token
            row[7] += 1
    return {key: tuple(round(v, 6) for v in row) for key, row in sums.items()}


def kept_usage(
    since: datetime | None = None, period: str = "hour"
) -> dict[tuple[Any, ...], tuple[float, ...]]:
    model = UsageHour if period == "hour" else UsageDay
    rows = model.objects.filter(**{f"{period}__gte": since}) if since else model.objects.all()
    return {
        (getattr(row, period), *(getattr(row, n) for n in USAGE_DIMENSIONS)): tuple(
            round(float(getattr(row, n)), 6) for n in _SUMS
        )
        for row in rows
    }


def expected_latency(since: datetime | None = None) -> Counter[tuple[datetime, str, int]]:
    counts: Counter[tuple[datetime, str, int]] = Counter()
    for record in RequestRecord.objects.all():
        hour = _hour(record.received_at)
        if since is not None and hour < since:
            continue
        for measure in LATENCY_MEASURES:
            value = getattr(record, measure)
            if value is not None:
                # bisect_left: the first bound >= value, as `value <= bound` in the fold.
                counts[(hour, measure, bisect.bisect_left(LATENCY_BINS, value))] += 1
    return counts


def kept_latency(since: datetime | None = None) -> Counter[tuple[datetime, str, int]]:
    rows = LatencyHour.objects.filter(hour__gte=since) if since else LatencyHour.objects.all()
    return Counter({(row.hour, row.measure, row.bin): row.count for row in rows})


def assert_rollup_matches_records(since: datetime | None = None) -> None:
    """The roll-up of every hour (and day) from `since` (all when None) equals the records'."""
    assert kept_usage(since) == expected_usage(since)
    day = since.replace(hour=0) if since else None
    assert kept_usage(day, "day") == expected_usage(day, "day")
    assert kept_latency(since) == expected_latency(since)
