"""The users page's allocations: each project's budget this period, spent and remaining."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from resource_server_async.admission.allocation_periods import period_bounds
from resource_server_async.admission.allocation_records import spent_in_records
from resource_server_async.catalog.projects import allocation_rule
from resource_server_async.models import Allocation


def allocation_rows() -> list[dict[str, Any]]:
    """One row per allocation; spent counted from the records of its current period (the same
    sums admission rebuilds its books from)."""
    now = timezone.now()
    rows = []
    for obj in Allocation.objects.select_related("project").order_by("project__name", "name"):
        rule = allocation_rule(obj)
        since, until = period_bounds(rule.period, rule.start_day, now)
        spent = spent_in_records(rule, since, until)
        rows.append(
            {
                "name": rule.name,
                "project": rule.project,
                "period": f"{since:%Y-%m-%d} to {until:%Y-%m-%d}",
                "tokens": rule.tokens,
                "tokens_spent": spent.tokens,
                "tokens_left": None if rule.tokens is None else max(rule.tokens - spent.tokens, 0),
                "gpu_seconds": rule.gpu_seconds,
                "gpu_spent": round(spent.gpu_seconds, 1),
            }
        )
    return rows
