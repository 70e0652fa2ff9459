"""Anthropic Messages routes: `POST .../{cluster}/{framework}/v1/messages`, its count_tokens,
and their federated forms."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from resource_server_async.api.plain_route import PlainRoute
from resource_server_async.api.request import read_request
from resource_server_async.errors import Dialect
from resource_server_async.inference import messages_api, pipeline, routing, token_count
from resource_server_async.schemas.anthropic import validate

Handler = Callable[[Request], Awaitable[Response]]

# Both operations run on endpoints of clusters that offer `messages`.
OFFERED = messages_api.OPERATION


def cluster_scoped(operation: str, run: pipeline.Runner) -> Handler:
    async def handler(request: Request) -> Response:
        parsed = await read_request(request, operation, Dialect.ANTHROPIC, validate)
        params = request.path_params
        endpoint = pipeline.resolve(
            parsed.principal, params["cluster"], params["framework"], parsed.model, OFFERED
        )
        return await pipeline.run_on(request, parsed, endpoint, run)

    handler.__name__ = f"anthropic_{operation.replace('/', '_')}"
    return handler


def federated(operation: str, run: pipeline.Runner) -> Handler:
    async def handler(request: Request) -> Response:
        parsed = await read_request(request, operation, Dialect.ANTHROPIC, validate)
        # The one routing loop of the OpenAI routes too.
        return await routing.serve(request, parsed, OFFERED, run)

    handler.__name__ = f"federated_anthropic_{operation.replace('/', '_')}"
    return handler


_RUNNERS: dict[str, pipeline.Runner] = {
    messages_api.OPERATION: messages_api.run,
    token_count.OPERATION: token_count.run,
}

routes = [
    *(
        PlainRoute(
            f"/resource_server/{{cluster}}/{{framework}}/v1/{operation}",
            cluster_scoped(operation, run),
            methods=["POST"],
        )
        for operation, run in _RUNNERS.items()
    ),
    *(
        PlainRoute(f"/resource_server/v1/{operation}", federated(operation, run), methods=["POST"])
        for operation, run in _RUNNERS.items()
    ),
]
