"""manage.py status: what this installation serves — clusters, endpoints, maintenance, catalog."""

from __future__ import annotations

from typing import Any

import orjson
from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Q
from django.utils import timezone

from resource_server_async.models import CatalogVersion, Cluster, Endpoint, MaintenanceWindow


def collect() -> dict[str, Any]:
    """The state as plain data: what --json prints and the table shows."""
    now = timezone.now()
    windows = MaintenanceWindow.objects.filter(starts_at__lte=now).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=now)
    )
    maintenance = [
        {
            "cluster": w.cluster,
            "framework": w.framework,
            "endpoint_slug": w.endpoint_slug,
            "until": w.ends_at.isoformat() if w.ends_at else None,
            "message": w.notice,
        }
        for w in windows.order_by("cluster", "starts_at")
    ]
    closed = {w["cluster"] for w in maintenance if not w["framework"] and not w["endpoint_slug"]}
    closed_slugs = {w["endpoint_slug"] for w in maintenance if w["endpoint_slug"]}
    endpoints = list(Endpoint.objects.order_by("cluster", "framework", "model"))
    clusters = [
        {
            "name": c.cluster_name,
            "adapter": c.cluster_adapter,
            "frameworks": list(c.frameworks),
            "endpoints": sum(1 for e in endpoints if e.cluster == c.cluster_name),
            "state": "maintenance" if c.cluster_name in closed else "open",
        }
        for c in Cluster.objects.order_by("cluster_name")
    ]
    version = CatalogVersion.objects.first()
    return {
        "catalog_version": version.version if version else 0,
        "clusters": clusters,
        "endpoints": [
            {
                "slug": e.endpoint_slug,
                "cluster": e.cluster,
                "framework": e.framework,
                "model": e.model,
                "adapter": e.endpoint_adapter,
                "state": "maintenance"
                if e.cluster in closed or e.endpoint_slug in closed_slugs
                else "open",
            }
            for e in endpoints
        ],
        "maintenance": maintenance,
    }


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    cells = [[str(row[c]) if row[c] is not None else "-" for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return [line.rstrip() for line in lines]


class Command(BaseCommand):
    help = (
        "Show the clusters, endpoints and maintenance windows this gateway serves, and the "
        "catalog version running workers follow (they rebuild when it moves)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON document")

    def handle(self, *args: Any, **options: Any) -> None:
        state = collect()
        if options["json"]:
            self.stdout.write(orjson.dumps(state, option=orjson.OPT_INDENT_2).decode())
            return
        out = [f"catalog version {state['catalog_version']}", "", "Clusters"]
        out += _table(
            [{**c, "frameworks": ",".join(c["frameworks"])} for c in state["clusters"]],
            ["name", "adapter", "frameworks", "endpoints", "state"],
        )
        out += ["", "Endpoints"]
        out += _table(state["endpoints"], ["slug", "cluster", "framework", "model", "state"])
        out += ["", "Maintenance now"]
        if state["maintenance"]:
            out += _table(
                state["maintenance"], ["cluster", "framework", "endpoint_slug", "until", "message"]
            )
        else:
            out.append("none")
        self.stdout.write("\n".join(out))
