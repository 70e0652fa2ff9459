"""The dashboard's aggregations: one ORM query per chart, over the records (last hour) or the
hourly roll-up (day, 30 days; see dashboard/sources.py), the same on PostgreSQL and SQLite,
each cached DASHBOARD_CACHE_SECONDS."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, QuerySet
from django.utils import timezone

from resource_server_async.accounting.rollup import LATENCY_BINS, OVERFLOW_BIN
from resource_server_async.dashboard import sources
from resource_server_async.dashboard.charts import Chart, Series
from resource_server_async.dashboard.ranges import TimeRange
from resource_server_async.dashboard.sources import FAILED
from resource_server_async.models import RequestRecord


def cached(key: str, build: Callable[[], Chart]) -> Chart:
    chart = cache.get_or_set(f"dashboard:{key}", build, settings.DASHBOARD_CACHE_SECONDS)
    assert isinstance(chart, Chart)
    return chart


def records_in(span: TimeRange, now: datetime) -> QuerySet[RequestRecord]:
    return RequestRecord.objects.filter(received_at__gte=span.since(now)).order_by()


def _per_bucket(
    span: TimeRange, now: datetime, rows: Iterable[Mapping[str, Any]], names: dict[str, str]
) -> tuple[list[str], list[Series]]:
    """Rows of (bucket, values) as one value per bucket of the range, zero where none."""
    starts = span.starts(now)
    index = {start: i for i, start in enumerate(starts)}
    values = {field: [0.0] * len(starts) for field in names}
    for row in rows:
        i = index.get(row["bucket"])
        if i is None:
            continue
        for field in names:
            values[field][i] = float(row[field] or 0)
    labels = [span.label_of(start) for start in starts]
    return labels, [Series(name, values[field]) for field, name in names.items()]


def traffic(span: TimeRange, now: datetime | None = None) -> Chart:
    """Requests and failed requests per bucket."""
    now = now or timezone.now()

    def build() -> Chart:
        source = sources.usage(span, now)
        rows = list(
            source.rows.annotate(bucket=source.bucket(span))
            .values("bucket")
            .annotate(requests=source.requests, errors=source.errors)
        )
        labels, series = _per_bucket(span, now, rows, {"requests": "requests", "errors": "errors"})
        return Chart("traffic", "Requests and errors", "line", labels, series)

    return cached(f"traffic:{span.key}", build)


def tokens(span: TimeRange, now: datetime | None = None) -> Chart:
    now = now or timezone.now()

    def build() -> Chart:
        source = sources.usage(span, now)
        rows = list(
            source.rows.annotate(bucket=source.bucket(span))
            .values("bucket")
            .annotate(prompt=source.prompt_tokens, completion=source.completion_tokens)
        )
        names = {"prompt": "prompt tokens", "completion": "completion tokens"}
        labels, series = _per_bucket(span, now, rows, names)
        return Chart("tokens", "Tokens", "line", labels, series)

    return cached(f"tokens:{span.key}", build)


def active_users(span: TimeRange, now: datetime | None = None) -> Chart:
    now = now or timezone.now()

    def build() -> Chart:
        # Distinct principals of the bucket's records, or of its roll-up rows: the same set.
        source = sources.usage(span, now)
        rows = list(
            source.rows.annotate(bucket=source.bucket(span))
            .values("bucket")
            .annotate(users=Count("principal_id", distinct=True))
        )
        labels, series = _per_bucket(span, now, rows, {"users": "active users"})
        return Chart("users", "Active users", "line", labels, series)

    return cached(f"users:{span.key}", build)


def _percentile(counts: list[int], fraction: float) -> float:
    total = sum(counts)
    if not total:
        return 0.0
    wanted = fraction * total
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= wanted:
            return LATENCY_BINS[min(i, len(LATENCY_BINS) - 1)]
    return LATENCY_BINS[-1]


def latency(span: TimeRange, field: str, now: datetime | None = None) -> Chart:
    """p50 and p95 of `field` ("duration" or "time_to_first_token") per bucket."""
    now = now or timezone.now()

    def build() -> Chart:
        rows = sources.latency_bins(span, field, now)
        starts = span.starts(now)
        index = {start: i for i, start in enumerate(starts)}
        histograms = [[0] * (OVERFLOW_BIN + 1) for _ in starts]
        for row in rows:
            i = index.get(row["bucket"])
            if i is not None:
                histograms[i][row["bin"]] += row["n"]
        series = [
            Series(name, [_percentile(h, q) for h in histograms])
            for name, q in (("p50", 0.5), ("p95", 0.95))
        ]
        labels = [span.label_of(start) for start in starts]
        title = "Latency" if field == "duration" else "Time to first token"
        chart_id = "latency" if field == "duration" else "ttft"
        notes = "seconds; each value is the upper bound of its histogram bin"
        return Chart(chart_id, title, "line", labels, series, unit="s", notes=notes)

    return cached(f"latency:{field}:{span.key}", build)


def by_field(span: TimeRange, field: str, now: datetime | None = None) -> Chart:
    """Requests, errors and tokens per cluster, model, username or project (busiest first)."""
    now = now or timezone.now()

    def build() -> Chart:
        source = sources.usage(span, now)
        rows = list(
            source.rows.values(field)
            .annotate(requests=source.requests, errors=source.errors, tokens=source.total_tokens)
            .order_by("-requests", field)[: settings.DASHBOARD_TOP_ROWS]
        )
        labels = [row[field] or "(none)" for row in rows]
        series = [
            Series(name, [float(row[name] or 0) for row in rows])
            for name in ("requests", "errors", "tokens")
        ]
        return Chart(f"by_{field}", f"By {field}", "bar", labels, series)

    return cached(f"by:{field}:{span.key}", build)


def models_table(span: TimeRange, now: datetime | None = None) -> Chart:
    """Per model: requests, errors, tokens, mean latency and time to first token."""
    now = now or timezone.now()

    def build() -> Chart:
        source = sources.usage(span, now)
        rows: list[Any] = list(
            source.rows.values("model")
            .annotate(
                requests=source.requests,
                errors=source.errors,
                tokens=source.total_tokens,
                latency=source.mean_duration,
                ttft=source.mean_ttft,
            )
            .order_by("-requests", "model")[: settings.DASHBOARD_TOP_ROWS]
        )
        labels = [row["model"] or "(none)" for row in rows]
        names = {
            "requests": "requests",
            "errors": "errors",
            "tokens": "tokens",
            "latency": "mean latency (s)",
            "ttft": "mean time to first token (s)",
        }
        series = [
            Series(name, [round(float(row[key] or 0), 4) for row in rows])
            for key, name in names.items()
        ]
        return Chart("models", "Models", "bar", labels, series)

    return cached(f"models:{span.key}", build)


def error_groups(span: TimeRange, now: datetime | None = None) -> Chart:
    """Failures grouped by status, code and endpoint, most frequent first."""
    now = now or timezone.now()

    def build() -> Chart:
        source = sources.usage(span, now)
        rows = list(
            source.rows.filter(FAILED)
            .values("status", "error_code", "endpoint_slug")
            .annotate(failures=source.requests)
            .order_by("-failures", "status", "error_code", "endpoint_slug")[
                : settings.DASHBOARD_TOP_ROWS
            ]
        )
        labels = [
            f"{row['status']} {row['error_code'] or '-'} {row['endpoint_slug'] or '-'}"
            for row in rows
        ]
        series = [Series("failures", [float(row["failures"]) for row in rows])]
        return Chart("errors", "Failures by code and endpoint", "bar", labels, series)

    return cached(f"errors:{span.key}", build)


# Columns of the "recent requests" tables: metadata only, never prompts or answers.
RECENT_FIELDS = (
    "received_at", "request_id", "username", "project", "cluster", "model", "operation",
    "status", "error_code", "duration", "total_tokens",
)  # fmt: skip


def recent(span: TimeRange, *, failed: bool = False, username: str = "") -> list[dict[str, Any]]:
    """The newest records of the range (DASHBOARD_RECENT_ROWS at most); not cached."""
    records = records_in(span, timezone.now())
    if failed:
        records = records.filter(FAILED)
    if username:
        records = records.filter(username=username)
    return list(
        records.order_by("-received_at").values(*RECENT_FIELDS, "principal_id")[
            : settings.DASHBOARD_RECENT_ROWS
        ]
    )


def batch_states(span: TimeRange, now: datetime | None = None) -> Chart:
    """Batches created in the range, by status."""
    from resource_server_async.models import Batch

    now = now or timezone.now()

    def build() -> Chart:
        rows = list(
            Batch.objects.filter(created_at__gte=span.since(now))
            .order_by()
            .values("status")
            .annotate(n=Count("id"))
            .order_by("status")
        )
        labels = [row["status"] for row in rows]
        return Chart(
            "batches",
            "Batches by status",
            "bar",
            labels,
            [Series("batches", [float(r["n"]) for r in rows])],
        )

    return cached(f"batches:{span.key}", build)
