"""How an Anthropic Messages request runs on an endpoint: passed through, or translated.

A model server that speaks Messages (vLLM, for one) gets the client's request as it came. One
that does not gets it as chat/completions and its answer (or stream) is translated back. The
endpoint's `messages_api` config says which: "native", "translate", or "auto" (the default):
try Messages, and if the server answers 404, remember that for a while and translate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response

from resource_server_async.endpoints.base import BaseEndpoint, InferenceRequest
from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.inference import pipeline
from resource_server_async.translation.messages_request import messages_to_chat
from resource_server_async.translation.messages_response import chat_to_message
from resource_server_async.translation.messages_stream import MessagesStream
from resource_server_async.upstream import errors as upstream_errors
from resource_server_async.upstream.done_gate import DoneGate

logger = logging.getLogger(__name__)

OPERATION = "messages"
MODES = ("auto", "native", "translate")
# How long a server's 404 on /v1/messages is believed: an upgraded server is found again.
CHAT_ONLY_SECONDS = 600.0


class ChatOnlyServers:
    """Endpoints (by slug) whose server answered 404 to /v1/messages, until a monotonic time."""

    def __init__(self, seconds: float = CHAT_ONLY_SECONDS) -> None:
        self.seconds = seconds
        self._until: dict[str, float] = {}

    def remember(self, endpoint: BaseEndpoint) -> None:
        self._until[endpoint.slug] = time.monotonic() + self.seconds

    def known(self, endpoint: BaseEndpoint) -> bool:
        until = self._until.get(endpoint.slug)
        return until is not None and until > time.monotonic()

    def clear(self) -> None:
        self._until.clear()


chat_only = ChatOnlyServers()


def mode_of(endpoint: BaseEndpoint) -> str:
    """The endpoint's `messages_api` config; adapters without the key are "auto"."""
    mode = getattr(endpoint.config, "messages_api", "auto")
    return mode if mode in MODES else "auto"


def _no_messages_route(error: GatewayError) -> bool:
    # The server's own 404 (not the gateway's): it has no /v1/messages.
    return error.status == 404 and (error.info or {}).get("upstream_status") == 404


async def run(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    """The answer to a validated Messages request on `endpoint`, in the Anthropic dialect."""
    mode = mode_of(endpoint)
    if mode == "translate" or (mode == "auto" and chat_only.known(endpoint)):
        return await translated(endpoint, parsed)
    try:
        return await native(endpoint, parsed)
    except GatewayError as error:
        if mode == "native" or not _no_messages_route(error):
            raise
    logger.info("%r has no /v1/messages; translating to chat/completions", endpoint)
    chat_only.remember(endpoint)
    return await translated(endpoint, parsed)


# --- pass-through ---------------------------------------------------------------------------


async def native(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    call = pipeline.prepare(endpoint, OPERATION, parsed)
    if not call.stream:
        return pipeline.json_response(await endpoint.complete(call), endpoint, call)
    chunks = await endpoint.open_stream(call)
    events = pipeline.relay(
        _until_message_stop(chunks, endpoint), Dialect.ANTHROPIC, endpoint, call
    )
    return pipeline.EventStreamResponse(events)


async def _until_message_stop(
    chunks: AsyncIterator[bytes], endpoint: BaseEndpoint
) -> AsyncIterator[bytes]:
    """The server's Messages stream; a stream that ends without message_stop (or an error
    event of its own) was cut off, and the client must be told rather than left guessing."""
    tail = b""
    try:
        async for chunk in chunks:
            tail = (tail + chunk)[-96:]
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    if b"message_stop" not in tail and b"event: error" not in tail:
        raise upstream_errors.stream_cut(endpoint)


# --- translation to chat/completions -------------------------------------------------------


def _chat_call(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> InferenceRequest:
    body = messages_to_chat(parsed.body, endpoint.model)
    return InferenceRequest(
        operation="chat/completions",
        body=body,
        raw=orjson.dumps(body),
        principal=parsed.principal,
        request_id=parsed.request_id,
        stream=parsed.stream,
        outcome=parsed.outcome,
    )


async def translated(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    call = _chat_call(endpoint, parsed)
    stops: list[str] = parsed.body.get("stop_sequences") or []
    if call.stream:
        chunks = await endpoint.open_stream(call)
        stream = MessagesStream(parsed.model, stops)
        return pipeline.EventStreamResponse(_translate_stream(chunks, stream, endpoint, call))
    reply = await endpoint.complete(call)
    if not 200 <= reply.status < 300:
        error = upstream_errors.reply_error(reply.status, reply.body, endpoint)
        raise upstream_errors.report(error, endpoint, call.request_id)
    try:
        answer: Any = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        error = upstream_errors.broken(endpoint, "its answer is not JSON")
        raise upstream_errors.report(error, endpoint, call.request_id) from None
    message = chat_to_message(answer, parsed.model, stops)
    return Response(orjson.dumps(message), media_type="application/json")


# The translation reports its own failures (a cut, an upstream error event) as error events
# without their codes; the operator's log names them with this one.
_TRANSLATED_CUT = GatewayError(502, "upstream_stream_interrupted", "translated stream failed")


async def _translate_stream(
    chunks: AsyncIterator[bytes],
    stream: MessagesStream,
    endpoint: BaseEndpoint,
    call: InferenceRequest,
) -> AsyncIterator[bytes]:
    yield stream.start()
    # The same test of wholeness as pipeline.relay: `[DONE]` alone does not end the answer.
    gate = DoneGate()
    try:
        async for chunk in chunks:
            events = stream.feed(gate.feed(chunk))
            if events:
                yield events
            if stream.failed:
                upstream_errors.report_cut(_TRANSLATED_CUT, endpoint, call.request_id)
                return
        gate.end()
        if gate.done and not gate.finished:
            raise upstream_errors.stream_unfinished(endpoint)
        yield stream.finish()
        if stream.failed:
            upstream_errors.report_cut(_TRANSLATED_CUT, endpoint, call.request_id)
    except GatewayError as error:
        upstream_errors.report_cut(error, endpoint, call.request_id)
        yield stream.fail(error)
    except Exception:
        logger.exception("translated stream from %r failed (request %s)", endpoint, call.request_id)
        yield stream.fail(
            GatewayError(502, "stream_failed", "The gateway failed while relaying the stream.")
        )
    finally:
        if call.outcome is not None:  # the record's tokens (accounting/)
            prompt, output, estimated = stream.usage()
            call.outcome.set_usage(prompt, output, estimated=estimated)
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
