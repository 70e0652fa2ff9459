"""GET /resource_server/{cluster}/jobs: the cluster's model jobs, as far as the caller may see."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from resource_server_async import runtime
from resource_server_async.admission.maintenance import check_open
from resource_server_async.api.http import JSONResponse
from resource_server_async.auth.authenticate import authenticate
from resource_server_async.clusters.jobs import NOT_READY, JobsReporter, jobs_not_supported
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.endpoints.globus_compute import GlobusComputeEndpoint
from resource_server_async.inference.visibility import usable_cluster, visible_jobs


def _compute_endpoints_of(
    running: Iterable[tuple[dict[str, Any], list[BaseEndpoint]]],
) -> list[tuple[dict[str, Any], str]]:
    """(job, Compute endpoint UUID) for each running job's Globus Compute endpoint."""
    return [
        (job, endpoint.compute.endpoint_uuid)
        for job, endpoints in running
        for endpoint in endpoints
        if isinstance(endpoint, GlobusComputeEndpoint)
    ]


async def mark_unready(running: Iterable[tuple[dict[str, Any], list[BaseEndpoint]]]) -> None:
    """A running job whose Globus Compute endpoint reports no workers is not ready."""
    pairs = _compute_endpoints_of(running)
    if not pairs:
        # No Compute endpoint behind any job: no executor is needed (a status-page cluster's
        # /jobs must not depend on Globus Compute being configured).
        return
    executor = runtime.current.executor
    uuids = list(dict.fromkeys(uuid for _, uuid in pairs))
    states = dict(
        zip(uuids, await asyncio.gather(*map(executor.endpoint_state, uuids)), strict=True)
    )
    for job, uuid in pairs:
        if states[uuid].workers == 0:
            job["Model Status"] = NOT_READY


async def cluster_jobs(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    name = request.path_params["cluster"]
    cluster = usable_cluster(principal, name)
    check_open(name)
    if not isinstance(cluster, JobsReporter):
        raise jobs_not_supported(cluster)
    visible = visible_jobs(await cluster.jobs(), principal, name)
    await mark_unready(visible.running_endpoints)
    return JSONResponse(visible.as_dict())


routes = [Route("/resource_server/{cluster}/jobs", cluster_jobs, methods=["GET"])]
