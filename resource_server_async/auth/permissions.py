"""Step 4 of a request: may this principal use this cluster and this endpoint?"""

from __future__ import annotations

from resource_server_async.auth.principal import Principal
from resource_server_async.clusters.base import BaseCluster
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import GatewayError


def _passes(principal: Principal, groups: frozenset[str], domains: frozenset[str]) -> bool:
    # Empty lists mean "open". Both restrictions apply when both are set.
    if groups and principal.groups.isdisjoint(groups):
        return False
    if not domains or principal.idp_domain in domains:
        return True
    # Hand-edited fixtures may spell a domain in capitals; identities are always lower case.
    return principal.idp_domain in {domain.lower() for domain in domains}


def _in_key_scope(principal: Principal, cluster: str, model: str | None) -> bool:
    # A personal key's narrower scope (empty = whatever its owner may use).
    if principal.key_clusters and cluster not in principal.key_clusters:
        return False
    return not (principal.key_models and model is not None and model not in principal.key_models)


def can_use_cluster(principal: Principal, cluster: BaseCluster) -> bool:
    return _in_key_scope(principal, cluster.name, None) and _passes(
        principal, cluster.row.allowed_groups, cluster.row.allowed_domains
    )


def can_use_endpoint(principal: Principal, endpoint: BaseEndpoint) -> bool:
    """The cluster's AND the endpoint's restrictions must both pass (and a key's scope)."""
    return (
        can_use_cluster(principal, endpoint.cluster)
        and _in_key_scope(principal, endpoint.cluster.name, endpoint.model)
        and _passes(principal, endpoint.row.allowed_groups, endpoint.row.allowed_domains)
    )


def _outside_key_scope(what: str) -> GatewayError:
    return GatewayError(
        403,
        "permission_denied",
        f"This personal API key is limited to other {what}; create a key for this one "
        "(igw keys create --models/--clusters) or use one without a scope.",
    )


def authorize_endpoint(principal: Principal, endpoint: BaseEndpoint) -> None:
    if not _in_key_scope(principal, endpoint.cluster.name, endpoint.model):
        raise _outside_key_scope(f"models or clusters than {endpoint.model!r}")
    if not can_use_endpoint(principal, endpoint):
        raise GatewayError(
            403,
            "permission_denied",
            f"You are not allowed to use model {endpoint.model!r} on cluster "
            f"{endpoint.row.cluster!r}. Ask the gateway operator to add your group or domain.",
        )


def authorize_cluster(principal: Principal, cluster: BaseCluster) -> None:
    if not can_use_cluster(principal, cluster):
        raise GatewayError(
            403,
            "permission_denied",
            f"You are not allowed to use cluster {cluster.name!r}. "
            "Ask the gateway operator to add your group or domain.",
        )
