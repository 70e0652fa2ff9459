"""What a caller may use: list-endpoints, and the model lists (`/v1/models`) in OpenAI's shape,
or in Anthropic's for a request that carries `anthropic-version` (the Anthropic client)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from resource_server_async.api.anthropic_models import anthropic_model_list, wants_anthropic
from resource_server_async.api.http import JSONResponse
from resource_server_async.auth.authenticate import authenticate
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.inference.pipeline import find_cluster
from resource_server_async.inference.visibility import usable_endpoints


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


def _model_list(endpoints: list[BaseEndpoint]) -> dict[str, Any]:
    """OpenAI's list format; a model served on several clusters is listed once, with them all."""
    by_name: dict[str, list[BaseEndpoint]] = {}
    for endpoint in endpoints:
        by_name.setdefault(endpoint.model, []).append(endpoint)
    data = []
    for name in sorted(by_name):
        clusters = sorted({e.row.cluster for e in by_name[name]})
        data.append(
            {
                "id": name,
                "object": "model",
                # The catalog does not know when a model was added; OpenAI clients need a number.
                "created": 0,
                "owned_by": ",".join(clusters),
                "clusters": clusters,
            }
        )
    return {"object": "list", "data": data}


def _listing(request: Request, endpoints: list[BaseEndpoint]) -> JSONResponse:
    if wants_anthropic(request):
        names = sorted({endpoint.model for endpoint in endpoints})
        return JSONResponse(anthropic_model_list(names, request.query_params))
    return JSONResponse(_model_list(endpoints))


async def federated_models(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    return _listing(request, usable_endpoints(principal))


async def cluster_models(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    name, framework = request.path_params["cluster"], request.path_params["framework"]
    find_cluster(principal, name, framework)
    return _listing(request, usable_endpoints(principal, cluster=name, framework=framework))


routes = [
    Route("/resource_server/list-endpoints", list_endpoints, methods=["GET"]),
    Route("/resource_server/v1/models", federated_models, methods=["GET"]),
    Route("/resource_server/{cluster}/{framework}/v1/models", cluster_models, methods=["GET"]),
]
