"""Where a range's charts read from: the last hour from the records themselves (minute buckets,
a few thousand rows, indexed by time), the day from the hourly roll-up (UsageHour), the 30 days
from the daily one (UsageDay), latency percentiles of both from LatencyHour. With 1,000,000
records (bench/dashboard.py) the overview's 30 days took 4.3 s from the records and ~370 ms of
queries from UsageHour (86,520 rows); UsageDay holds ~24 times fewer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import (
    Aggregate,
    Avg,
    Case,
    Count,
    ExpressionWrapper,
    FloatField,
    IntegerField,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, NullIf, Trunc

from resource_server_async.accounting.rollup import LATENCY_BINS, OVERFLOW_BIN
from resource_server_async.dashboard.ranges import TimeRange
from resource_server_async.models import LatencyHour, RequestRecord, UsageDay, UsageHour

FAILED = Q(status__gte=400)


@dataclass(frozen=True)
class Source:
    """The rows of a range and how to count them: the same names for records and roll-up."""

    rows: QuerySet[RequestRecord] | QuerySet[UsageHour] | QuerySet[UsageDay]
    time_field: str
    requests: Aggregate
    errors: Aggregate
    prompt_tokens: Aggregate
    completion_tokens: Aggregate
    total_tokens: Aggregate
    mean_duration: Aggregate | ExpressionWrapper
    mean_ttft: Aggregate | ExpressionWrapper

    def bucket(self, span: TimeRange) -> Trunc:
        return span.trunc(self.time_field)


def usage(span: TimeRange, now: datetime) -> Source:
    if span.rollup:
        model = UsageHour if span.rollup == "hour" else UsageDay
        field = span.rollup
        return Source(
            model.objects.filter(**{f"{field}__gte": span.since(now)}).order_by(),
            field,
            requests=Sum("request_count"),
            errors=Sum("request_count", filter=FAILED, default=0),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            total_tokens=Sum("total_tokens"),
            mean_duration=_mean("duration_sum", "duration_count"),
            mean_ttft=_mean("ttft_sum", "ttft_count"),
        )
    return Source(
        RequestRecord.objects.filter(received_at__gte=span.since(now)).order_by(),
        "received_at",
        requests=Count("id"),
        errors=Count("id", filter=FAILED),
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        total_tokens=Sum("total_tokens"),
        mean_duration=Avg("duration"),
        mean_ttft=Avg("time_to_first_token"),
    )


def latency_bins(span: TimeRange, measure: str, now: datetime) -> Iterable[Mapping[str, Any]]:
    """Rows of (bucket, bin, n): how many records of `measure` fell in each bin per bucket."""
    if span.rollup:
        return (
            LatencyHour.objects.filter(hour__gte=span.since(now), measure=measure)
            .order_by()
            .annotate(bucket=span.trunc("hour"))
            .values("bucket", "bin")
            .annotate(n=Sum("count"))
        )
    return (
        RequestRecord.objects.filter(received_at__gte=span.since(now))
        .filter(**{f"{measure}__isnull": False})
        .order_by()
        .annotate(bucket=span.trunc(), bin=_bin_of(measure))
        .values("bucket", "bin")
        .annotate(n=Count("id"))
    )


def _mean(total: str, count: str) -> ExpressionWrapper:
    """A mean from the roll-up's sums and counts (None where nothing was measured)."""
    counted = NullIf(Cast(Sum(count), FloatField()), Value(0.0))
    return ExpressionWrapper(Sum(total) / counted, output_field=FloatField())


def _bin_of(field: str) -> Case:
    """A record's latency bin, as accounting.rollup counts it for the roll-up."""
    whens = [
        When(**{f"{field}__lte": bound}, then=Value(i)) for i, bound in enumerate(LATENCY_BINS)
    ]
    return Case(*whens, default=Value(OVERFLOW_BIN), output_field=IntegerField())
