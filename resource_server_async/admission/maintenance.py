"""The one rule for "is this closed for maintenance?": MAINTENANCE_ERROR_NOTICES and windows.

Two sources close a cluster: the MAINTENANCE_ERROR_NOTICES setting (until it is changed) and
maintenance windows, rows in the database (`manage.py maintenance`, the admin) that the catalog
snapshot holds by cluster. A window may close only one framework or endpoint of a cluster, and
is in force from `starts_at` until `ends_at`, compared with the clock at each request, so it
opens and closes on time in every worker. A request for a cluster with no window costs one
dictionary read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings

from resource_server_async.catalog.maintenance_windows import Window
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import GatewayError


@dataclass(frozen=True, slots=True)
class Closure:
    """Why a target is closed now, and until when (None: until an operator reopens it)."""

    notice: str
    until: float | None


def _plain_notice(cluster_name: str) -> str:
    return f"Cluster {cluster_name!r} is under maintenance."


def _window_in_force(
    cluster_name: str, framework: str | None, slug: str | None, now: float | None
) -> Window | None:
    windows = catalog.snapshot.maintenance.get(cluster_name)
    if not windows:
        return None  # the common case: one dictionary read, not even the clock
    if now is None:
        now = time.time()
    for window in windows:
        if window.open_at(now) and window.covers(framework, slug):
            return window
    return None


def closure(
    cluster_name: str, endpoint: BaseEndpoint | None = None, now: float | None = None
) -> Closure | None:
    """Why `cluster_name` (or `endpoint` on it) takes no requests now, or None when open.

    A cluster listed in MAINTENANCE_ERROR_NOTICES is closed whatever its entry says: an
    operator who lists a cluster means to close it, and sending its traffic on because the
    message was left empty would be the unsafe mistake. An empty message gets a plain one.
    """
    notice = settings.MAINTENANCE_ERROR_NOTICES.get(cluster_name)
    if notice is not None:
        return Closure(notice if notice.strip() else _plain_notice(cluster_name), None)
    if endpoint is None:
        window = _window_in_force(cluster_name, None, None, now)
    else:
        row = endpoint.row
        window = _window_in_force(cluster_name, row.framework, row.slug, now)
    if window is None:
        return None
    message = window.message if window.message.strip() else _plain_notice(cluster_name)
    return Closure(message, window.ends_at)


def maintenance_notice(cluster_name: str, endpoint: BaseEndpoint | None = None) -> str | None:
    """The notice of a cluster (or endpoint) under maintenance, or None when it is open."""
    found = closure(cluster_name, endpoint)
    return None if found is None else found.notice


def _retry_after(until: float | None) -> dict[str, str]:
    if until is None:
        return {}  # the error renderer's default Retry-After
    return {"Retry-After": str(max(1, math.ceil(until - time.time())))}


def check_open(cluster_name: str, endpoint: BaseEndpoint | None = None) -> None:
    """503 with the notice, and Retry-After until the window's end, when closed."""
    found = closure(cluster_name, endpoint)
    if found is not None:
        raise GatewayError(
            503,
            "cluster_maintenance",
            found.notice,
            info={"cluster": cluster_name},
            headers=_retry_after(found.until),
        )


def all_closed_error(cluster_names: list[str]) -> GatewayError:
    """503 for a model whose clusters are all under maintenance, their notices as the message."""
    closures = [closure(name) for name in cluster_names]
    notices = " ".join(found.notice for found in closures if found is not None)
    # Worth retrying once the first of them reopens.
    ends = [found.until for found in closures if found is not None and found.until is not None]
    until = min(ends) if ends else None
    return GatewayError(
        503,
        "cluster_maintenance",
        notices,
        info={"clusters": cluster_names},
        headers=_retry_after(until),
    )
