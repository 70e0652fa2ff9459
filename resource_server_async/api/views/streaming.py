"""The streaming side channel (CONTRACT.md §3): cluster-side functions POST a stream's chunks,
its error or its end, with the shared secret and the task's own token.

Every check happens before anything is published, and a POST only ever reaches the stream its
token was issued for, so a bad POST cannot disturb any stream.

A stream's every chunk is one POST here, so the handler is plain ASGI, answered by
`SideChannelMiddleware` ahead of admission, the capture (it is not an inference request),
Starlette's exception middleware and the router; the edge's host check and headers still
apply. The headers are scanned once, the body read with its bound, and the answer
written without a Request or Response object. Errors are in the OpenAI dialect, as elsewhere
on `/resource_server/`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable

import orjson
from django.conf import settings
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from resource_server_async import runtime
from resource_server_async.api.http import check_declared_length, json_object, too_large
from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.streaming import (
    DATA,
    DONE,
    ERROR,
    Published,
    StreamEvent,
    token_matches,
)

logger = logging.getLogger(__name__)

_BASE = "/resource_server/api/streaming/"
# The trailing slash is part of the contract's paths.
KINDS = {f"{_BASE}data/": DATA, f"{_BASE}error/": ERROR, f"{_BASE}done/": DONE}
_RECEIVED = orjson.dumps({"status": "received"})
_JSON = (b"content-type", b"application/json")


def _check_secret(given: bytes) -> None:
    secret = settings.INTERNAL_STREAMING_SECRET
    if not secret:
        raise GatewayError(
            503,
            "streaming_not_configured",
            "This gateway has no INTERNAL_STREAMING_SECRET, so it accepts no streamed chunks.",
        )
    if not hmac.compare_digest(given, secret.encode()):
        raise GatewayError(
            401, "invalid_internal_secret", "The X-Internal-Secret header is missing or wrong."
        )


async def _read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The body, refusing (413) more than `limit` bytes, declared or sent chunked."""
    check_declared_length(declared, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(
                499, "client_disconnected", "The client closed the connection mid-body."
            )
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _text_field(body: dict[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise GatewayError(
            400,
            "invalid_stream_message",
            f"'{name}' must be a string.",
            param=name,
        )
    return value


def _event(body: dict[str, object], kind: str) -> StreamEvent:
    declared = body.get("type", kind)
    if declared != kind:
        raise GatewayError(
            400,
            "invalid_stream_message",
            f"'type' is {declared!r} but this route takes {kind!r} messages.",
            param="type",
        )
    if kind == DATA:
        return StreamEvent(DATA, _text_field(body, "data"))
    if kind == ERROR:
        return StreamEvent(ERROR, _text_field(body, "error"))
    return StreamEvent(DONE)


async def _publish(task_id: str, event: StreamEvent) -> None:
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


async def _receive(scope: Scope, receive: Receive, kind: str) -> str:
    """Check, read and publish one POST; the task's id."""
    secret = token = declared = None
    for name, value in scope["headers"]:
        if name == b"x-internal-secret":
            secret = value
        elif name == b"x-stream-task-token":
            token = value
        elif name == b"content-length":
            declared = value
    _check_secret(secret or b"")
    body = json_object(await _read_body(receive, declared, settings.STREAMING_MAX_BODY_BYTES))
    task_id = body.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise GatewayError(
            400, "invalid_stream_message", "'task_id' must be a non-empty string.", param="task_id"
        )
    if not token_matches(task_id, (token or b"").decode("latin-1")):
        raise GatewayError(
            403,
            "invalid_stream_token",
            "The X-Stream-Task-Token header does not grant access to this task, or has expired.",
        )
    await _publish(task_id, _event(body, kind))
    return task_id


class SideChannel:
    """The ASGI app of the three side-channel routes (the kind is the path's)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = KINDS[scope["path"]]
        headers = [_JSON]
        try:
            task_id = await _receive(scope, receive, kind)
        except GatewayError as error:
            status, answer = error.status, error.render(Dialect.OPENAI)
            extra = dict(error.headers)
            if status == 503:
                extra.setdefault("Retry-After", "30")
            headers += [(name.lower().encode(), value.encode()) for name, value in extra.items()]
        else:
            status = 200
            answer = (
                _RECEIVED if kind == DATA else orjson.dumps({"status": "ok", "task_id": task_id})
            )
        headers.append((b"content-length", str(len(answer)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


side_channel = SideChannel()

# The side channel as build_app wraps it (the edge's checks), which the gateway's own server
# protocol calls without the application around it (inference_gateway/direct_answers.py).
served_directly: ASGIApp | None = None


class SideChannelMiddleware:
    """Sends the side channel's POSTs to `side_channel` (this module's, wrapped in the edge's
    checks by app.py) at once; everything else (other methods on these paths too, which the
    routes answer with 405) goes on to `app`."""

    def __init__(self, app: ASGIApp, side_channel: ASGIApp) -> None:
        self.app = app
        self.side_channel = side_channel

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # The chosen application's awaitable handed back, not awaited in a coroutine of this
        # layer's (as the edge does): one frame less that every open stream holds and that
        # each of its chunks wakes through.
        if scope["type"] == "http" and scope["path"] in KINDS and scope["method"] == "POST":
            return self.side_channel(scope, receive, send)
        return self.app(scope, receive, send)


# The same app behind the router: a POST reaches it there only in an app built without the
# middleware; other methods get Starlette's 405.
routes = [Route(path, side_channel, methods=["POST"]) for path in KINDS]
