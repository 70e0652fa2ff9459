"""What `/v1/models` says of each model: OpenAI's list format plus where it is served, in what
state, under which other names, and what it can do (`config.capabilities`).

The state of each endpoint is "maintenance" while a notice or window closes it, else its live
state (clusters/live_state.py: ready, starting, queued, free_nodes, reachable, unknown,
offline), read by the view beforehand (`read_states`) so that a listing never waits on a
model server of its own accord.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resource_server_async.admission.maintenance import closure
from resource_server_async.catalog.capabilities import SCHEMA_VERSION
from resource_server_async.catalog.snapshot import CatalogSnapshot, catalog
from resource_server_async.clusters.live_state import LiveState
from resource_server_async.endpoints.base import BaseEndpoint

# Live states by endpoint slug (from read_states); a missing one counts as unknown.
States = Mapping[str, LiveState]

# What /v1/models says of a model whose endpoint has no config.capabilities: only the version.
_UNDESCRIBED = {"schema_version": SCHEMA_VERSION}


def endpoint_state(endpoint: BaseEndpoint, states: States) -> str:
    """The endpoint's state as the listing shows it: "maintenance", or its live state."""
    if closure(endpoint.row.cluster, endpoint) is not None:
        return "maintenance"
    return states.get(endpoint.slug, LiveState.UNKNOWN).label


def capabilities_of(endpoints: list[BaseEndpoint], snapshot: CatalogSnapshot) -> dict[str, Any]:
    """The first described endpoint's capabilities (catalog order): one model's endpoints are
    one model, so operators describe it once."""
    for endpoint in endpoints:
        described = snapshot.entry(endpoint).capabilities
        if described is not None:
            return described.as_listing()
    return dict(_UNDESCRIBED)


def aliases_of(endpoints: list[BaseEndpoint], snapshot: CatalogSnapshot) -> list[str]:
    return sorted({name for e in endpoints for name in snapshot.entry(e).aliases})


def served_by(endpoint: BaseEndpoint, states: States) -> dict[str, Any]:
    row = endpoint.row
    return {
        "cluster": row.cluster,
        "framework": row.framework,
        "state": endpoint_state(endpoint, states),
        "base_url": f"/resource_server/{row.cluster}/{row.framework}/v1",
    }


def model_entry(name: str, endpoints: list[BaseEndpoint], states: States) -> dict[str, Any]:
    """One model in OpenAI's shape, with the gateway's extra fields."""
    snapshot = catalog.snapshot
    clusters = sorted({e.row.cluster for e in endpoints})
    return {
        "id": name,
        "object": "model",
        # The catalog does not know when a model was added; OpenAI clients need a number.
        "created": 0,
        "owned_by": ",".join(clusters),
        "clusters": clusters,
        "served_by": [served_by(e, states) for e in endpoints],
        "aliases": aliases_of(endpoints, snapshot),
        "capabilities": capabilities_of(endpoints, snapshot),
    }


def by_model(endpoints: list[BaseEndpoint]) -> dict[str, list[BaseEndpoint]]:
    """Endpoints grouped by the model name they serve, names sorted."""
    grouped: dict[str, list[BaseEndpoint]] = {}
    for endpoint in endpoints:
        grouped.setdefault(endpoint.model, []).append(endpoint)
    return {name: grouped[name] for name in sorted(grouped)}


def model_list(endpoints: list[BaseEndpoint], states: States) -> dict[str, Any]:
    """OpenAI's list format; a model served on several clusters is listed once, with them all."""
    return {
        "object": "list",
        "data": [model_entry(name, items, states) for name, items in by_model(endpoints).items()],
    }


def find_model(endpoints: list[BaseEndpoint], model_id: str) -> tuple[str, list[BaseEndpoint]]:
    """The model `model_id` names (its own name or an alias, case-insensitively) among
    `endpoints`, and its endpoints; ("", []) when none."""
    wanted = model_id.lower()
    snapshot = catalog.snapshot
    grouped = by_model(endpoints)
    for name, items in grouped.items():
        if name.lower() == wanted:
            return name, items
    # Only then aliases: a model's own name wins, as in the catalog's lookups.
    for name, items in grouped.items():
        if any(wanted == alias.lower() for e in items for alias in snapshot.entry(e).aliases):
            return name, items
    return "", []


def cluster_model_details(endpoint: BaseEndpoint, states: States) -> dict[str, Any]:
    """One endpoint as the reference gateway's `GET /{cluster}/models` lists it."""
    snapshot = catalog.snapshot
    row = endpoint.row
    return {
        "id": row.model,
        "object": "model",
        "cluster": row.cluster,
        "framework": row.framework,
        "endpoint_slug": row.slug,
        "state": endpoint_state(endpoint, states),
        "base_url": f"/resource_server/{row.cluster}/{row.framework}/v1",
        "aliases": list(snapshot.entry(endpoint).aliases),
        "capabilities": capabilities_of([endpoint], snapshot),
    }
