"""The streaming side channel (CONTRACT.md §3): cluster-side functions POST a stream's chunks,
its error or its end, with the shared secret and the task's own token.

Every check happens before anything is published, and a POST only ever reaches the stream its
token was issued for, so a bad POST cannot disturb any stream.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from django.conf import settings
from starlette.requests import Request
from starlette.routing import Route

from resource_server_async import runtime
from resource_server_async.api.http import JSONResponse, read_json_object
from resource_server_async.errors import GatewayError
from resource_server_async.streaming import (
    DATA,
    DONE,
    ERROR,
    Published,
    StreamEvent,
    token_matches,
)

logger = logging.getLogger(__name__)


def _check_secret(request: Request) -> None:
    secret = settings.INTERNAL_STREAMING_SECRET
    if not secret:
        raise GatewayError(
            503,
            "streaming_not_configured",
            "This gateway has no INTERNAL_STREAMING_SECRET, so it accepts no streamed chunks.",
        )
    given = request.headers.get("x-internal-secret", "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise GatewayError(
            401, "invalid_internal_secret", "The X-Internal-Secret header is missing or wrong."
        )


def _text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise GatewayError(
            400,
            "invalid_stream_message",
            f"'{name}' must be a string.",
            param=name,
        )
    return value


async def _receive(request: Request, kind: str) -> tuple[str, StreamEvent]:
    _check_secret(request)
    body, _ = await read_json_object(request, settings.STREAMING_MAX_BODY_BYTES)
    task_id = body.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise GatewayError(
            400, "invalid_stream_message", "'task_id' must be a non-empty string.", param="task_id"
        )
    if not token_matches(task_id, request.headers.get("x-stream-task-token", "")):
        raise GatewayError(
            403,
            "invalid_stream_token",
            "The X-Stream-Task-Token header does not grant access to this task, or has expired.",
        )
    declared = body.get("type", kind)
    if declared != kind:
        raise GatewayError(
            400,
            "invalid_stream_message",
            f"'type' is {declared!r} but this route takes {kind!r} messages.",
            param="type",
        )
    if kind == DATA:
        event = StreamEvent(DATA, _text_field(body, "data"))
    elif kind == ERROR:
        event = StreamEvent(ERROR, _text_field(body, "error"))
    else:
        event = StreamEvent(DONE)
    try:
        published = await runtime.current.hub.publish(task_id, event)
    except Exception as exc:  # Redis unreachable: the function may send it again shortly
        logger.error("stream hub: cannot publish for %s: %s", task_id, exc)
        raise GatewayError(
            503,
            "stream_hub_unavailable",
            "The gateway cannot take streamed chunks right now; send this one again shortly.",
            headers={"Retry-After": "1"},
        ) from None
    if published is Published.UNKNOWN:
        raise GatewayError(
            410,
            "stream_closed",
            f"Stream {task_id} is not open: its client went away, it timed out, or it ended.",
        )
    if published is Published.FULL:
        raise GatewayError(
            503,
            "stream_backlog_full",
            f"Stream {task_id} holds as much as it may (STREAMING_BACKLOG messages, "
            "STREAMING_BACKLOG_BYTES bytes) that its client has not read yet; send this one "
            "again shortly.",
            headers={"Retry-After": "1"},
        )
    return task_id, event


async def receive_data(request: Request) -> JSONResponse:
    await _receive(request, DATA)
    return JSONResponse({"status": "received"})


async def receive_error(request: Request) -> JSONResponse:
    task_id, _ = await _receive(request, ERROR)
    return JSONResponse({"status": "ok", "task_id": task_id})


async def receive_done(request: Request) -> JSONResponse:
    task_id, _ = await _receive(request, DONE)
    return JSONResponse({"status": "ok", "task_id": task_id})


routes = [
    Route("/resource_server/api/streaming/data/", receive_data, methods=["POST"]),
    Route("/resource_server/api/streaming/error/", receive_error, methods=["POST"]),
    Route("/resource_server/api/streaming/done/", receive_done, methods=["POST"]),
]
