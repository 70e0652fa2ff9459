"""GET /resource_server/{cluster}/jobs: the cluster's model jobs, as far as the caller may see."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from resource_server_async import runtime
from resource_server_async.admission.maintenance import check_open
from resource_server_async.api.http import JSONResponse
from resource_server_async.auth.authenticate import authenticate
from resource_server_async.auth.permissions import authorize_cluster
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.clusters.jobs import (
    JobsReporter,
    jobs_not_supported,
    mark_unready,
    visible_jobs,
)
from resource_server_async.errors import GatewayError
from resource_server_async.inference.visibility import listing, usable_clusters


async def cluster_jobs(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    name = request.path_params["cluster"]
    cluster = catalog.cluster(name)
    if cluster is None:
        raise GatewayError(
            404,
            "cluster_not_found",
            f"There is no cluster {name!r}. Clusters you may use: "
            f"{listing(usable_clusters(principal), 'none')}.",
        )
    authorize_cluster(principal, cluster)
    check_open(name)
    if not isinstance(cluster, JobsReporter):
        raise jobs_not_supported(cluster)
    visible = visible_jobs(await cluster.jobs(), principal, name)
    if visible.running_endpoints:
        await mark_unready(visible.running_endpoints, runtime.current.executor)
    return JSONResponse(visible.as_dict())


routes = [Route("/resource_server/{cluster}/jobs", cluster_jobs, methods=["GET"])]
