"""What of the catalog a principal may see: listings and error messages never show more."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resource_server_async.auth.permissions import (
    authorize_cluster,
    can_use_cluster,
    can_use_endpoint,
)
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.clusters.jobs import JOB_LISTS, NOT_AVAILABLE, ClusterJobs
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import GatewayError

if TYPE_CHECKING:
    from resource_server_async.clusters.base import BaseCluster


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


def usable_cluster(principal: Principal, name: str) -> BaseCluster:
    """The cluster `name`, which the principal must be allowed to use: 404 naming the clusters
    it may use when there is none, 403 when it may not use this one."""
    cluster = catalog.cluster(name)
    if cluster is None:
        raise GatewayError(
            404,
            "cluster_not_found",
            f"There is no cluster {name!r}. Clusters you may use: "
            f"{listing(usable_clusters(principal), 'none')}.",
        )
    authorize_cluster(principal, cluster)
    return cluster


def listing(names: list[str], empty: str) -> str:
    """`'a', 'b'` for a message, or `empty` when there is nothing the caller may see."""
    return ", ".join(repr(name) for name in names) if names else empty


# --- /jobs: a cluster's cached job lists, cut down to what one principal may use --------------


def _endpoint_for(cluster: str, framework: str, model: str) -> BaseEndpoint | None:
    endpoint = catalog.lookup(cluster, framework, model)
    if endpoint is not None:
        return endpoint
    # Status pages do not always name the framework the catalog uses (Metis says "api").
    for candidate in catalog.endpoints_for_model(model):
        if candidate.row.cluster == cluster:
            return candidate
    return None


@dataclass(slots=True)
class VisibleJobs:
    """The answer for one principal, and the endpoints behind each running job."""

    lists: dict[str, list[dict[str, Any]]]
    cluster_status: dict[str, Any]
    running_endpoints: list[tuple[dict[str, Any], list[BaseEndpoint]]]

    def as_dict(self) -> dict[str, Any]:
        return {**self.lists, "cluster_status": self.cluster_status}


def _usable_job_endpoints(
    job: dict[str, Any], principal: Principal, cluster: str
) -> tuple[list[str], list[BaseEndpoint]]:
    job_cluster = job["Cluster"] if job["Cluster"] != NOT_AVAILABLE else cluster
    models, endpoints = [], []
    for model in (m.strip() for m in job["Models"].split(",")):
        endpoint = _endpoint_for(job_cluster, job["Framework"], model) if model else None
        if endpoint is not None and can_use_endpoint(principal, endpoint):
            models.append(model)
            endpoints.append(endpoint)
    return models, endpoints


def visible_jobs(jobs: ClusterJobs, principal: Principal, cluster: str) -> VisibleJobs:
    """Only the models the principal may use; a job with none left is left out."""
    lists: dict[str, list[dict[str, Any]]] = {}
    running: list[tuple[dict[str, Any], list[BaseEndpoint]]] = []
    for name in JOB_LISTS:
        kept = []
        for job in jobs.lists.get(name, []):
            models, endpoints = _usable_job_endpoints(job, principal, cluster)
            if not models:
                continue
            visible = copy.deepcopy(job)  # the cached lists are shared by every caller
            visible["Models"] = ",".join(models)
            kept.append(visible)
            if name == "running":
                running.append((visible, endpoints))
        lists[name] = kept
    return VisibleJobs(lists, copy.deepcopy(jobs.cluster_status), running)
