"""Cursor pages of files and batches, newest first: `after=<id>` continues past that one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet

from resource_server_async.batches.shapes import page

M = TypeVar("M", bound=Model)


def cursor_page(
    rows: QuerySet[M], after: str, limit: int, to_object: Callable[[M], dict[str, Any]]
) -> dict[str, Any]:
    """A page of `rows` (the caller's own) past the row with id `after` (unknown id: empty)."""
    if after:
        cursor = rows.filter(pk=after).values_list("created_at", flat=True).first()
        if cursor is None:
            return page([], False)
        rows = rows.filter(Q(created_at__lt=cursor) | Q(created_at=cursor, pk__lt=after))
    found = list(rows.order_by("-created_at", "-pk")[: limit + 1])
    return page([to_object(row) for row in found[:limit]], len(found) > limit)
