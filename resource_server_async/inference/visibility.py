"""What of the catalog a principal may see: listings and error messages never show more."""

from __future__ import annotations

from resource_server_async.auth.permissions import can_use_cluster, can_use_endpoint
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.endpoints.base import BaseEndpoint


def usable_endpoints(
    principal: Principal,
    *,
    cluster: str | None = None,
    framework: str | None = None,
    operation: str | None = None,
) -> list[BaseEndpoint]:
    """Endpoints the principal may use, optionally on one cluster/framework or offering one
    operation, in catalog order. Scans the catalog: for listings and errors, not the hot path."""
    found = []
    for endpoint in catalog.snapshot.endpoints.values():
        row = endpoint.row
        if cluster is not None and row.cluster != cluster:
            continue
        if framework is not None and row.framework != framework:
            continue
        if operation is not None and not endpoint.cluster.serves_operation(operation):
            continue
        if can_use_endpoint(principal, endpoint):
            found.append(endpoint)
    return found


def usable_models(principal: Principal, **where: str | None) -> list[str]:
    return sorted({endpoint.model for endpoint in usable_endpoints(principal, **where)})


def usable_clusters(principal: Principal) -> list[str]:
    return sorted(
        name
        for name, cluster in catalog.snapshot.clusters.items()
        if can_use_cluster(principal, cluster)
    )


def listing(names: list[str], empty: str) -> str:
    """`'a', 'b'` for a message, or `empty` when there is nothing the caller may see."""
    return ", ".join(repr(name) for name in names) if names else empty
