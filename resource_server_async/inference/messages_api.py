"""How an Anthropic Messages request runs on an endpoint: passed through, or translated.

A model server that speaks Messages (vLLM, for one) gets the client's request as it came. One
that does not gets it as chat/completions and its answer (or stream) is translated back. The
endpoint's `messages_api` config says which: "native", "translate", or "auto" (the default):
try Messages, and if the server answers 404, remember that for a while and translate. The
machinery is `native_or_translated`'s, shared with the Responses API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.responses import Response

from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import Dialect
from resource_server_async.inference import native_or_translated, pipeline
from resource_server_async.inference.native_or_translated import (
    CHAT_ONLY_SECONDS,
    MODES,
    ChatOnlyServers,
)
from resource_server_async.translation.messages_request import messages_to_chat
from resource_server_async.translation.messages_response import chat_to_message
from resource_server_async.translation.messages_stream import MessagesStream
from resource_server_async.upstream import errors as upstream_errors

__all__ = ["CHAT_ONLY_SECONDS", "MODES", "OPERATION", "chat_only", "mode_of", "run"]

OPERATION = "messages"

chat_only = ChatOnlyServers()


def mode_of(endpoint: BaseEndpoint) -> str:
    """The endpoint's `messages_api` config; adapters without the key are "auto"."""
    return native_or_translated.configured_mode(endpoint, "messages_api")


async def run(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    """The answer to a validated Messages request on `endpoint`, in the Anthropic dialect."""
    return await native_or_translated.run(
        endpoint,
        parsed,
        mode=mode_of(endpoint),
        chat_only=chat_only,
        native=native,
        translated=translated,
        route="/v1/messages",
    )


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


async def translated(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    call = native_or_translated.chat_call(parsed, messages_to_chat(parsed.body, endpoint.model))
    stops: list[str] = parsed.body.get("stop_sequences") or []
    if call.stream:
        chunks = await endpoint.open_stream(call)
        stream = MessagesStream(parsed.model, stops)
        return pipeline.EventStreamResponse(
            native_or_translated.translate_stream(chunks, stream, endpoint, call)
        )
    answer = await native_or_translated.chat_answer(endpoint, call)
    message = chat_to_message(answer, parsed.model, stops)
    return Response(orjson.dumps(message), media_type="application/json")
