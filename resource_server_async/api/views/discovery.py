"""What a caller may use: list-endpoints, and the models (`/v1/models`, `/v1/models/{id}`) in
OpenAI's shape, or in Anthropic's for a request that carries `anthropic-version` (the Anthropic
client); and the reference gateway's `GET /{cluster}/models[?model_id=]`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from resource_server_async.api.anthropic_models import (
    anthropic_model,
    anthropic_model_list,
    wants_anthropic,
)
from resource_server_async.api.http import JSONResponse
from resource_server_async.api.model_listing import (
    by_model,
    cluster_model_details,
    find_model,
    model_entry,
    model_list,
)
from resource_server_async.auth.authenticate import authenticate
from resource_server_async.clusters.live_state import read_states
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import GatewayError
from resource_server_async.inference.pipeline import find_cluster
from resource_server_async.inference.visibility import listing, usable_cluster, usable_endpoints


async def list_endpoints(request: Request) -> JSONResponse:
    """CONTRACT.md §2: clusters -> frameworks -> models and the operations offered."""
    principal = await authenticate(request)
    clusters: dict[str, Any] = {}
    for endpoint in usable_endpoints(principal):
        name, framework = endpoint.row.cluster, endpoint.row.framework
        entry = clusters.setdefault(
            name, {"base_url": f"/resource_server/{name}", "frameworks": {}}
        )
        frameworks = entry["frameworks"]
        if framework not in frameworks:
            frameworks[framework] = {
                "models": [],
                "endpoints": [f"/v1/{op}" for op in endpoint.cluster.row.openai_endpoints],
            }
        frameworks[framework]["models"].append(endpoint.model)
    for entry in clusters.values():
        for framework in entry["frameworks"].values():
            framework["models"].sort()
    return JSONResponse({"clusters": dict(sorted(clusters.items()))})


async def _listing(request: Request, endpoints: list[BaseEndpoint]) -> JSONResponse:
    if wants_anthropic(request):
        return JSONResponse(anthropic_model_list(list(by_model(endpoints)), request.query_params))
    return JSONResponse(model_list(endpoints, await read_states(endpoints)))


async def _one_model(request: Request, endpoints: list[BaseEndpoint]) -> JSONResponse:
    model_id = request.path_params["model_id"]
    name, found = find_model(endpoints, model_id)
    if not found:
        raise GatewayError(
            404,
            "model_not_found",
            f"No model {model_id!r} here that you may use. Models you may use: "
            f"{listing(list(by_model(endpoints)), 'none')}.",
            param="model",
        )
    if wants_anthropic(request):
        return JSONResponse(anthropic_model(name))
    return JSONResponse(model_entry(name, found, await read_states(found)))


async def _cluster_endpoints(request: Request) -> list[BaseEndpoint]:
    principal = await authenticate(request)
    name, framework = request.path_params["cluster"], request.path_params["framework"]
    find_cluster(principal, name, framework)
    return usable_endpoints(principal, cluster=name, framework=framework)


async def federated_models(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    return await _listing(request, usable_endpoints(principal))


async def federated_model(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    return await _one_model(request, usable_endpoints(principal))


async def cluster_models(request: Request) -> JSONResponse:
    return await _listing(request, await _cluster_endpoints(request))


async def cluster_model(request: Request) -> JSONResponse:
    return await _one_model(request, await _cluster_endpoints(request))


async def reference_cluster_models(request: Request) -> JSONResponse:
    """The reference gateway's form: a bare list of the cluster's models the caller may use,
    or the one `?model_id=` names (404 when it is not among them)."""
    principal = await authenticate(request)
    name = request.path_params["cluster"]
    usable_cluster(principal, name)
    endpoints = sorted(usable_endpoints(principal, cluster=name), key=lambda e: e.model.lower())
    model_id = request.query_params.get("model_id")
    if model_id is not None:
        _, endpoints = find_model(endpoints, model_id)
        if not endpoints:
            raise GatewayError(
                404,
                "model_not_found",
                f"Cluster {name!r} serves no model {model_id!r} that you may use.",
                param="model_id",
            )
    states = await read_states(endpoints)
    return JSONResponse([cluster_model_details(endpoint, states) for endpoint in endpoints])


routes = [
    Route("/resource_server/list-endpoints", list_endpoints, methods=["GET"]),
    Route("/resource_server/v1/models", federated_models, methods=["GET"]),
    Route("/resource_server/v1/models/{model_id:path}", federated_model, methods=["GET"]),
    Route("/resource_server/{cluster}/{framework}/v1/models", cluster_models, methods=["GET"]),
    Route(
        "/resource_server/{cluster}/{framework}/v1/models/{model_id:path}",
        cluster_model,
        methods=["GET"],
    ),
    Route("/resource_server/{cluster}/models", reference_cluster_models, methods=["GET"]),
]
