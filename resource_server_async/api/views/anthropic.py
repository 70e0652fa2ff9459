"""Anthropic Messages routes: `POST .../{cluster}/{framework}/v1/messages` and federated."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resource_server_async import admission
from resource_server_async.api.request import read_request
from resource_server_async.auth.permissions import authorize_endpoint
from resource_server_async.errors import Dialect
from resource_server_async.inference import messages_api, pipeline, routing
from resource_server_async.schemas.anthropic import validate_messages_request

OPERATION = messages_api.OPERATION


def _validate(operation: str, body: dict[str, Any]) -> None:
    validate_messages_request(body)


async def _read(request: Request) -> pipeline.ParsedRequest:
    # In this dialect the Anthropic client's x-api-key header is accepted too.
    return await read_request(request, OPERATION, Dialect.ANTHROPIC, _validate)


async def messages(request: Request) -> Response:
    parsed = await _read(request)
    params = request.path_params
    endpoint = pipeline.resolve(
        parsed.principal, params["cluster"], params["framework"], parsed.model, OPERATION
    )
    authorize_endpoint(parsed.principal, endpoint)
    admission.admit(parsed.principal, endpoint)
    return await pipeline.cancel_on_disconnect(request, messages_api.run(endpoint, parsed))


async def federated_messages(request: Request) -> Response:
    parsed = await _read(request)
    endpoints = routing.candidates(parsed.principal, parsed.model, OPERATION)
    # The same failover as the OpenAI routes: only past failures before a model was reached.
    answer = routing.failover(endpoints, parsed, messages_api.run)
    return await pipeline.cancel_on_disconnect(request, answer)


routes = [
    Route("/resource_server/{cluster}/{framework}/v1/messages", messages, methods=["POST"]),
    Route("/resource_server/v1/messages", federated_messages, methods=["POST"]),
]
