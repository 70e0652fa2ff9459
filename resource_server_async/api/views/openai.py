"""OpenAI-compatible inference routes: cluster-scoped and federated, one per operation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resource_server_async.api.request import read_request
from resource_server_async.errors import Dialect
from resource_server_async.inference import pipeline, routing
from resource_server_async.schemas import openai as schemas

Handler = Callable[[Request], Awaitable[Response]]

OPERATIONS = tuple(schemas.REQUESTS)  # chat/completions, completions, embeddings, responses


def cluster_scoped(operation: str) -> Handler:
    async def handler(request: Request) -> Response:
        parsed = await read_request(request, operation, Dialect.OPENAI, schemas.validate)
        params = request.path_params
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


def federated(operation: str) -> Handler:
    async def handler(request: Request) -> Response:
        parsed = await read_request(request, operation, Dialect.OPENAI, schemas.validate)
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
