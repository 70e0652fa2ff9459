"""The reference gateway's batch routes (CONTRACT.md §2): a batch of a file on the cluster's
filesystem, run by the registered batch function (docs/batches.md, "Cluster batches").

`GET /resource_server/v1/batches/{id}` is shared with the Batches API (api/views/batches.py),
which answers each batch in the shape of the API that made it.
"""

from __future__ import annotations

from django.conf import settings
from starlette.requests import Request
from starlette.routing import Route

from resource_server_async.api.http import JSONResponse, read_json_object
from resource_server_async.auth.authenticate import authenticate
from resource_server_async.auth.permissions import authorize_endpoint
from resource_server_async.batches import batch_store
from resource_server_async.batches.cluster_paths import confine
from resource_server_async.batches.database import in_thread
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.endpoints.globus_compute import GlobusComputeEndpointConfig
from resource_server_async.errors import GatewayError
from resource_server_async.inference.pipeline import find_cluster, model_not_found


async def create_cluster_batch(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    body, _ = await read_json_object(request)
    cluster, framework = request.path_params["cluster"], request.path_params["framework"]
    find_cluster(principal, cluster, framework)
    model = body.get("model")
    endpoint = catalog.lookup(cluster, framework, model) if isinstance(model, str) else None
    if endpoint is None:
        raise model_not_found(principal, cluster, framework, model)
    authorize_endpoint(principal, endpoint)
    config = endpoint.config
    if not (isinstance(config, GlobusComputeEndpointConfig) and config.supports_batch):
        raise GatewayError(
            400,
            "batch_not_supported",
            f"Model {endpoint.model!r} on {cluster!r} takes no cluster batches; upload the "
            "file and use the Batches API (POST /resource_server/v1/files, then /batches).",
        )
    roots = settings.BATCH_CLUSTER_ROOTS.get(cluster, [])
    input_path = confine(body.get("input_file"), roots, "input_file")
    output = body.get("output_folder_path")
    output_path = "" if output in (None, "") else confine(output, roots, "output_folder_path")
    created = await in_thread(
        batch_store.create_cluster,
        principal,
        (cluster, framework, endpoint.model),
        input_path,
        output_path,
    )
    return JSONResponse(created)


async def cluster_batch_result(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    batch_id = request.path_params["batch_id"]
    return JSONResponse(await in_thread(batch_store.cluster_result, principal.id, batch_id))


routes = [
    Route(
        "/resource_server/{cluster}/{framework}/v1/batches",
        create_cluster_batch,
        methods=["POST"],
    ),
    Route("/resource_server/v1/batches/{batch_id}/result", cluster_batch_result, methods=["GET"]),
]
