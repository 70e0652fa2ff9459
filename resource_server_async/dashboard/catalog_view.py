"""The models page's catalog part: which clusters serve each model, and its capabilities."""

from __future__ import annotations

from typing import Any

from resource_server_async.catalog.snapshot import catalog
from resource_server_async.endpoints.base import BaseEndpoint


def served_models() -> list[dict[str, Any]]:
    """Each model of the in-process catalog: its cluster/framework pairs and the capabilities
    the first described endpoint declares (config.capabilities)."""
    snapshot = catalog.snapshot
    models: dict[str, list[BaseEndpoint]] = {}
    for endpoint in snapshot.endpoints.values():
        models.setdefault(endpoint.row.model, []).append(endpoint)
    answer = []
    for name, endpoints in sorted(models.items()):
        described = next(
            (c for e in endpoints if (c := snapshot.entry(e).capabilities) is not None), None
        )
        listing = described.as_listing() if described is not None else {}
        answer.append(
            {
                "model": name,
                "served_by": sorted(f"{e.row.cluster}/{e.row.framework}" for e in endpoints),
                "capabilities": ", ".join(sorted(k for k, v in listing.items() if v is True)),
            }
        )
    return answer
