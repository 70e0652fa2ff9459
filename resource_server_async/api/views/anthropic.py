"""Anthropic Messages routes: `POST .../{cluster}/{framework}/v1/messages`, its count_tokens,
and their federated forms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resource_server_async.api.request import read_request
from resource_server_async.auth.permissions import authorize_endpoint
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import Dialect
from resource_server_async.inference import messages_api, pipeline, routing, token_count
from resource_server_async.schemas.anthropic import validate

Handler = Callable[[Request], Awaitable[Response]]
# Runs a validated request on one endpoint: messages_api.run or token_count.run.
Runner = Callable[[BaseEndpoint, pipeline.ParsedRequest], Awaitable[Response]]

# Both operations run on endpoints of clusters that offer `messages`.
OFFERED = messages_api.OPERATION


def cluster_scoped(operation: str, run: Runner) -> Handler:
    async def handler(request: Request) -> Response:
        parsed = await read_request(request, operation, Dialect.ANTHROPIC, validate)
        params = request.path_params
        endpoint = pipeline.resolve(
            parsed.principal, params["cluster"], params["framework"], parsed.model, OFFERED
        )
        authorize_endpoint(parsed.principal, endpoint)
        work = pipeline.admit_then(parsed, endpoint, lambda: run(endpoint, parsed))
        return await pipeline.cancel_on_disconnect(request, work)

    handler.__name__ = f"anthropic_{operation.replace('/', '_')}"
    return handler


def federated(operation: str, run: Runner) -> Handler:
    async def handler(request: Request) -> Response:
        parsed = await read_request(request, operation, Dialect.ANTHROPIC, validate)
        endpoints = routing.candidates(parsed.principal, parsed.model, OFFERED)
        # The same failover as the OpenAI routes: only past failures before a model was reached.
        answer = routing.failover(endpoints, parsed, run)
        return await pipeline.cancel_on_disconnect(request, answer)

    handler.__name__ = f"federated_anthropic_{operation.replace('/', '_')}"
    return handler


_RUNNERS: dict[str, Runner] = {
    messages_api.OPERATION: messages_api.run,
    token_count.OPERATION: token_count.run,
}

routes = [
    *(
        Route(
            f"/resource_server/{{cluster}}/{{framework}}/v1/{operation}",
            cluster_scoped(operation, run),
            methods=["POST"],
        )
        for operation, run in _RUNNERS.items()
    ),
    *(
        Route(f"/resource_server/v1/{operation}", federated(operation, run), methods=["POST"])
        for operation, run in _RUNNERS.items()
    ),
]
