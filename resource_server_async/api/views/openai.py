"""OpenAI-compatible inference routes: cluster-scoped and federated, one per operation.

Responses go through `responses_api` (passed through, or translated to chat/completions);
the other operations are passed through by the pipeline. Federated requests take the one
routing loop (`routing.serve`) that the Anthropic routes take too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from resource_server_async.api.plain_route import PlainRoute
from resource_server_async.api.request import read_request
from resource_server_async.errors import Dialect
from resource_server_async.inference import pipeline, responses_api, routing
from resource_server_async.schemas import openai as schemas

Handler = Callable[[Request], Awaitable[Response]]

OPERATIONS = tuple(schemas.REQUESTS)  # chat/completions, completions, embeddings, responses


def _runner(operation: str) -> pipeline.Runner:
    if operation == responses_api.OPERATION:
        return responses_api.run
    return pipeline.passed_through(operation, Dialect.OPENAI)


def cluster_scoped(operation: str) -> Handler:
    run = _runner(operation)

    async def handler(request: Request) -> Response:
        parsed = await read_request(request, operation, Dialect.OPENAI, schemas.validate)
        params = request.path_params
        endpoint = pipeline.resolve(
            parsed.principal, params["cluster"], params["framework"], parsed.model, operation
        )
        return await pipeline.run_on(request, parsed, endpoint, run)

    handler.__name__ = f"openai_{operation.replace('/', '_')}"
    return handler


def federated(operation: str) -> Handler:
    run = _runner(operation)

    async def handler(request: Request) -> Response:
        parsed = await read_request(request, operation, Dialect.OPENAI, schemas.validate)
        return await routing.serve(request, parsed, operation, run)

    handler.__name__ = f"federated_{operation.replace('/', '_')}"
    return handler


routes = [
    *(
        PlainRoute(
            f"/resource_server/{{cluster}}/{{framework}}/v1/{operation}",
            cluster_scoped(operation),
            methods=["POST"],
        )
        for operation in OPERATIONS
    ),
    *(
        PlainRoute(f"/resource_server/v1/{operation}", federated(operation), methods=["POST"])
        for operation in OPERATIONS
    ),
]
