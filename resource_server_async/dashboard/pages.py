"""Which charts each page shows, by id: the registry the page views and the data endpoints share."""

from __future__ import annotations

from collections.abc import Callable

from resource_server_async.dashboard import queries
from resource_server_async.dashboard.charts import Chart
from resource_server_async.dashboard.ranges import TimeRange

CHARTS: dict[str, Callable[[TimeRange], Chart]] = {
    "traffic": queries.traffic,
    "tokens": queries.tokens,
    "users": queries.active_users,
    "latency": lambda span: queries.latency(span, "duration"),
    "ttft": lambda span: queries.latency(span, "time_to_first_token"),
    "by_cluster": lambda span: queries.by_field(span, "cluster"),
    "by_model": lambda span: queries.by_field(span, "model"),
    "by_username": lambda span: queries.by_field(span, "username"),
    "by_project": lambda span: queries.by_field(span, "project"),
    "models": queries.models_table,
    "errors": queries.error_groups,
    "batches": queries.batch_states,
}

PAGES: dict[str, tuple[str, ...]] = {
    "overview": (
        "traffic", "tokens", "users", "latency", "ttft",
        "by_cluster", "by_model", "by_username", "by_project",
    ),
    "models": ("models",),
    "users": ("by_username", "by_project"),
    "errors": ("errors",),
    "batches": ("batches",),
    "clusters": (),
}  # fmt: skip
