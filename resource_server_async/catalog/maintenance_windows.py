"""Maintenance windows as the snapshot holds them: plain, immutable, grouped by cluster.

The rule that applies them (is this request's target closed now?) is admission/maintenance.py;
here they are only loaded. Windows already over are left out; a window that starts or ends
between two reloads still starts and ends on time, since the rule compares against the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone


@dataclass(frozen=True, slots=True)
class Window:
    cluster: str
    framework: str  # "" = every framework of the cluster
    endpoint_slug: str  # "" = every endpoint (of the framework)
    starts_at: float  # seconds since the epoch
    ends_at: float | None  # None = until switched off
    message: str

    def open_at(self, now: float) -> bool:
        """True while the window is in force at `now`."""
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def covers(self, framework: str | None, slug: str | None) -> bool:
        """Whether the window closes this target; a cluster alone (None) only by cluster-wide
        windows."""
        if self.framework and self.framework != framework:
            return False
        return not self.endpoint_slug or self.endpoint_slug == slug


Windows = dict[str, tuple[Window, ...]]


def load_windows() -> Windows:
    from resource_server_async.models import MaintenanceWindow

    now = timezone.now()
    grouped: dict[str, list[Window]] = {}
    rows = MaintenanceWindow.objects.exclude(ends_at__lte=now).order_by("starts_at")
    for row in rows:
        grouped.setdefault(row.cluster, []).append(
            Window(
                cluster=row.cluster,
                framework=row.framework,
                endpoint_slug=row.endpoint_slug,
                starts_at=row.starts_at.timestamp(),
                ends_at=row.ends_at.timestamp() if row.ends_at else None,
                message=row.message,
            )
        )
    return {cluster: tuple(windows) for cluster, windows in grouped.items()}
