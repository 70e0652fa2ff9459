"""How an OpenAI Responses request runs on an endpoint: passed through, or translated.

A model server with /v1/responses (vLLM) gets the client's request as it came. One without
(llama.cpp, older vLLM) gets it as chat/completions, and its answer or stream is translated back
into a `response` and the Responses stream events. The endpoint's `responses_api` config says
which ("native", "translate", or "auto": try /v1/responses, translate after the server's 404),
through `native_or_translated`, as Anthropic Messages do. Translated requests may continue a
stored response (`previous_response_id`) when the operator enables the store (RESPONSES_STORE).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from django.conf import settings
from starlette.responses import Response

from resource_server_async import runtime
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.inference import native_or_translated, pipeline
from resource_server_async.inference.native_or_translated import ChatOnlyServers
from resource_server_async.translation.responses_request import responses_to_chat
from resource_server_async.translation.responses_response import chat_to_response
from resource_server_async.translation.responses_stream import ResponsesStream
from resource_server_async.upstream import errors as upstream_errors

logger = logging.getLogger(__name__)

OPERATION = "responses"

chat_only = ChatOnlyServers()

# What ends a whole Responses stream: a terminal event's type as a JSON string value (escaped
# quotes inside the model's text cannot match), or an error event.
_TERMINAL = (
    b'"response.completed"',
    b'"response.incomplete"',
    b'"response.failed"',
    b"event: error",
    b'"type":"error"',
    b'"type": "error"',
)
_CARRY = max(map(len, _TERMINAL)) - 1


def mode_of(endpoint: BaseEndpoint) -> str:
    """The endpoint's `responses_api` config; adapters without the key are "auto"."""
    return native_or_translated.configured_mode(endpoint, "responses_api")


async def run(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    """The answer to a validated Responses request on `endpoint`, in the OpenAI dialect."""
    return await native_or_translated.run(
        endpoint,
        parsed,
        mode=mode_of(endpoint),
        chat_only=chat_only,
        native=native,
        translated=translated,
        route="/v1/responses",
    )


# --- pass-through ---------------------------------------------------------------------------


async def native(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    call = pipeline.prepare(endpoint, OPERATION, parsed)
    if not call.stream:
        return pipeline.json_response(await endpoint.complete(call), endpoint, call)
    chunks = await endpoint.open_stream(call)
    events = pipeline.relay(_until_finished(chunks, endpoint), Dialect.OPENAI, endpoint, call)
    return pipeline.EventStreamResponse(events)


async def _until_finished(
    chunks: AsyncIterator[bytes], endpoint: BaseEndpoint
) -> AsyncIterator[bytes]:
    """The server's Responses stream; one that ends without a terminal event (completed,
    incomplete, failed, or an error) was cut off, and the client must be told."""
    finished = False
    carry = b""  # the end of the last chunk: a marker may straddle two reads
    try:
        async for chunk in chunks:
            if not finished:
                window = carry + chunk
                finished = any(marker in window for marker in _TERMINAL)
                carry = window[-_CARRY:]
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    if not finished:
        raise upstream_errors.stream_cut(endpoint)


# --- translation to chat/completions -------------------------------------------------------


def _refuses_hosted_tools(endpoint: BaseEndpoint) -> bool:
    return getattr(endpoint.config, "responses_hosted_tools", "drop") == "refuse"


def _input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    given = body.get("input")
    return [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])


def _kept(parsed: pipeline.ParsedRequest) -> bool:
    """Whether this response goes into the store (OpenAI's `store` defaults to true)."""
    return settings.RESPONSES_STORE and parsed.body.get("store") is not False


async def _history(parsed: pipeline.ParsedRequest) -> list[dict[str, Any]]:
    """The stored conversation that `previous_response_id` continues ([] without one)."""
    previous = parsed.body.get("previous_response_id")
    if not previous:
        return []
    if not settings.RESPONSES_STORE:
        raise GatewayError(
            400,
            "previous_response_not_supported",
            "This gateway keeps no responses (RESPONSES_STORE is off), so previous_response_id "
            "cannot be continued here. Send the whole conversation in 'input' (and store: "
            "false), or ask the gateway operator to set RESPONSES_STORE.",
            param="previous_response_id",
        )
    stored = await runtime.current.response_store.load(previous)
    # Another principal's response is as absent as an expired one: its existence is not told.
    if stored is None or stored.owner != parsed.principal.id:
        raise GatewayError(
            404,
            "previous_response_not_found",
            f"Response {previous!r} is not stored here: it expired, was never stored "
            "(store: false), or belongs to someone else.",
            param="previous_response_id",
        )
    return stored.items


async def _save(
    parsed: pipeline.ParsedRequest,
    response_id: str,
    items: list[dict[str, Any]],
) -> None:
    try:
        await runtime.current.response_store.save(response_id, parsed.principal.id, items)
    except Exception as exc:  # the answer stands without its stored copy
        logger.error("response store: saving %s failed: %s", response_id, exc)


async def translated(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    history = await _history(parsed)
    request = responses_to_chat(
        parsed.body,
        endpoint.model,
        history=history,
        refuse_hosted=_refuses_hosted_tools(endpoint),
    )
    call = native_or_translated.chat_call(parsed, request.body)
    conversation = [*history, *_input_items(parsed.body)]
    if call.stream:
        chunks = await endpoint.open_stream(call)
        stream = ResponsesStream(parsed.body, parsed.model, request.names)
        events = native_or_translated.translate_stream(chunks, stream, endpoint, call)
        if _kept(parsed):
            events = _stored_before_the_end(events, stream, parsed, conversation)
        return pipeline.EventStreamResponse(events)
    answer = await native_or_translated.chat_answer(endpoint, call)
    response = chat_to_response(answer, parsed.body, parsed.model, request.names)
    if _kept(parsed):
        await _save(parsed, response["id"], [*conversation, *response["output"]])
    return Response(orjson.dumps(response), media_type="application/json")


async def _stored_before_the_end(
    events: AsyncIterator[bytes],
    stream: ResponsesStream,
    parsed: pipeline.ParsedRequest,
    conversation: list[dict[str, Any]],
) -> AsyncIterator[bytes]:
    """The events, with the finished response stored before its last event is sent: a client
    that continues it at once must find it."""
    held: bytes | None = None
    try:
        async for chunk in events:
            if held is not None:
                yield held
            held = chunk
        if not stream.failed:
            await _save(parsed, stream.response_id, [*conversation, *stream.output("completed")])
        if held is not None:
            yield held
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
