"""`manage.py maintenance CLUSTER on|off|list [--message M] [--start T] [--end T]
[--framework F] [--endpoint SLUG]`: maintenance windows, seen by every worker within seconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from resource_server_async.models import Cluster, Endpoint, MaintenanceWindow

_RELATIVE = re.compile(r"^\+?(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_moment(text: str, now: datetime) -> datetime:
    """ISO 8601 (`2026-12-03T08:00`, UTC unless it names an offset), or `now` plus a duration
    (`+30m`, `2h`, `1d`)."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = relative.groups()
        return now + timedelta(**{_UNITS[unit]: float(amount)})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"{text!r} is not a time: write ISO 8601 (2026-12-03T08:00, UTC unless an offset "
            "is given) or a duration from now (+30m, 2h, 1d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _targets(cluster: str, framework: str, endpoint: str) -> QuerySet[MaintenanceWindow]:
    rows = MaintenanceWindow.objects.filter(cluster=cluster)
    if framework:
        rows = rows.filter(framework=framework)
    if endpoint:
        rows = rows.filter(endpoint_slug=endpoint)
    return rows


class Command(BaseCommand):
    help = (
        "Start, end or list maintenance windows of a cluster (or of one framework or endpoint "
        "of it). Requests to it answer 503 with the message and Retry-After until the window "
        "ends; federated requests go to another cluster. Every worker sees the change within "
        "CATALOG_REFRESH_SECONDS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("cluster")
        parser.add_argument("action", choices=["on", "off", "list"])
        parser.add_argument("--message", default="", help="what callers are told")
        parser.add_argument("--start", help="when it starts (default now): ISO 8601 or +30m")
        parser.add_argument("--end", help="when it ends (default: until `off`): ISO or +2h")
        parser.add_argument("--framework", default="", help="only this framework")
        parser.add_argument("--endpoint", default="", help="only this endpoint (its slug)")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = options["cluster"]
        if not Cluster.objects.filter(cluster_name=cluster).exists():
            known = ", ".join(Cluster.objects.values_list("cluster_name", flat=True)) or "none"
            raise CommandError(f"There is no cluster {cluster!r} (known clusters: {known}).")
        endpoint = options["endpoint"]
        if (
            endpoint
            and not Endpoint.objects.filter(cluster=cluster, endpoint_slug=endpoint).exists()
        ):
            raise CommandError(f"Cluster {cluster!r} has no endpoint {endpoint!r}.")
        action = options["action"]
        if action == "on":
            self._on(cluster, options)
        elif action == "off":
            self._off(cluster, options["framework"], endpoint)
        self._list(cluster)

    def _on(self, cluster: str, options: dict[str, Any]) -> None:
        now = timezone.now()
        start = parse_moment(options["start"], now) if options["start"] else now
        end = parse_moment(options["end"], now) if options["end"] else None
        if end is not None and end <= start:
            raise CommandError(f"--end ({end.isoformat()}) must be after --start.")
        if end is not None and end <= now:
            raise CommandError(f"--end ({end.isoformat()}) is already past.")
        MaintenanceWindow.objects.create(
            cluster=cluster,
            framework=options["framework"],
            endpoint_slug=options["endpoint"],
            starts_at=start,
            ends_at=end,
            message=options["message"],
        )

    def _off(self, cluster: str, framework: str, endpoint: str) -> None:
        """End the windows in force now; windows still to come are kept (listed below)."""
        now = timezone.now()
        in_force = _targets(cluster, framework, endpoint).filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=now), starts_at__lte=now
        )
        with transaction.atomic():
            ended = 0
            for window in in_force.select_for_update():
                # Saved one by one: each save bumps the catalog's version (signals.py).
                window.ends_at = max(now, window.starts_at + timedelta(microseconds=1))
                window.save(update_fields=["ends_at"])
                ended += 1
        self.stdout.write(f"Ended {ended} maintenance window(s) of {cluster}.")

    def _list(self, cluster: str) -> None:
        now = timezone.now()
        windows = MaintenanceWindow.objects.filter(cluster=cluster).exclude(ends_at__lte=now)
        if not windows:
            self.stdout.write(f"{cluster}: open (no maintenance window now or to come).")
            return
        for window in windows.order_by("starts_at"):
            target = "/".join(p for p in (cluster, window.framework, window.endpoint_slug) if p)
            state = "in force" if window.starts_at <= now else "to come"
            end = window.ends_at.isoformat() if window.ends_at else "until switched off"
            self.stdout.write(
                f"{target}: {state}, {window.starts_at.isoformat()} to {end}: {window.notice()}"
            )
