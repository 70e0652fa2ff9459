"""OpenAI-compatible inference routes: cluster-scoped and federated, one per operation.

Responses go through `responses_api` (passed through, or translated to chat/completions);
the other operations are passed through by the pipeline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resource_server_async.api.request import read_request
from resource_server_async.auth.permissions import authorize_endpoint
from resource_server_async.errors import Dialect
from resource_server_async.inference import pipeline, responses_api, routing
from resource_server_async.schemas import openai as schemas

Handler = Callable[[Request], Awaitable[Response]]

OPERATIONS = tuple(schemas.REQUESTS)  # chat/completions, completions, embeddings, responses


def cluster_scoped(operation: str) -> Handler:
    async def handler(request: Request) -> Response:
        parsed = await read_request(request, operation, Dialect.OPENAI, schemas.validate)
        params = request.path_params
        if operation == responses_api.OPERATION:
            return await _responses(request, parsed, params["cluster"], params["framework"])
        return await pipeline.run(
            request,
            parsed,
            cluster=params["cluster"],
            framework=params["framework"],
            operation=operation,
            dialect=Dialect.OPENAI,
        )

    handler.__name__ = f"openai_{operation.replace('/', '_')}"
    return handler


async def _responses(
    request: Request, parsed: pipeline.ParsedRequest, cluster: str, framework: str
) -> Response:
    endpoint = pipeline.resolve(
        parsed.principal, cluster, framework, parsed.model, responses_api.OPERATION
    )
    authorize_endpoint(parsed.principal, endpoint)
    work = pipeline.admit_then(parsed, endpoint, lambda: responses_api.run(endpoint, parsed))
    return await pipeline.cancel_on_disconnect(request, work)


def federated(operation: str) -> Handler:
    async def handler(request: Request) -> Response:
        parsed = await read_request(request, operation, Dialect.OPENAI, schemas.validate)
        if operation == responses_api.OPERATION:
            endpoints = routing.candidates(parsed.principal, parsed.model, operation)
            answer = routing.failover(endpoints, parsed, responses_api.run)
            return await pipeline.cancel_on_disconnect(request, answer)
        return await routing.run_federated(
            request, parsed, operation=operation, dialect=Dialect.OPENAI
        )

    handler.__name__ = f"federated_{operation.replace('/', '_')}"
    return handler


routes = [
    *(
        Route(
            f"/resource_server/{{cluster}}/{{framework}}/v1/{operation}",
            cluster_scoped(operation),
            methods=["POST"],
        )
        for operation in OPERATIONS
    ),
    *(
        Route(f"/resource_server/v1/{operation}", federated(operation), methods=["POST"])
        for operation in OPERATIONS
    ),
]
