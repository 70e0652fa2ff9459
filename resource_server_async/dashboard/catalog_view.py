"""The models page's catalog part: which clusters serve each model, and its capabilities."""

from __future__ import annotations

from typing import Any

from resource_server_async.api.model_listing import by_model, capabilities_of
from resource_server_async.catalog.snapshot import catalog


def served_models() -> list[dict[str, Any]]:
    snapshot = catalog.snapshot
    answer = []
    for name, endpoints in sorted(by_model(list(snapshot.endpoints.values())).items()):
        capabilities = capabilities_of(endpoints, snapshot)
        answer.append(
            {
                "model": name,
                "served_by": sorted(f"{e.row.cluster}/{e.row.framework}" for e in endpoints),
                "capabilities": ", ".join(sorted(k for k, v in capabilities.items() if v is True)),
            }
        )
    return answer
