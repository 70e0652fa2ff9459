"""How an Anthropic Messages request runs on an endpoint: passed through, or translated.

A model server that speaks Messages (vLLM, for one) gets the client's request as it came. One
that does not gets it as chat/completions and its answer (or stream) is translated back. The
endpoint's `messages_api` config says which: "native", "translate", or "auto" (the default):
try Messages, and if the server answers 404, remember that for a while and translate. The
machinery is `native_or_translated`'s, shared with the Responses API.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import Dialect
from resource_server_async.inference import native_or_translated, pipeline
from resource_server_async.inference.native_or_translated import CHAT_ONLY_SECONDS, MODES
from resource_server_async.translation.messages_request import messages_to_chat
from resource_server_async.translation.messages_response import chat_to_message
from resource_server_async.translation.messages_stream import MessagesStream

__all__ = ["CHAT_ONLY_SECONDS", "FAMILY", "MODES", "OPERATION", "chat_only", "mode_of", "run"]

OPERATION = "messages"


# --- translation to chat/completions -------------------------------------------------------


async def translated(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    call = native_or_translated.chat_call(parsed, messages_to_chat(parsed.body, endpoint.model))
    stops: list[str] = parsed.body.get("stop_sequences") or []
    if call.stream:
        chunks = await endpoint.open_stream(call)
        stream = MessagesStream(parsed.model, stops)
        return pipeline.EventStreamResponse(
            native_or_translated.translate_stream(chunks, stream, endpoint, call),
            dialect=Dialect.ANTHROPIC,
        )
    answer = await native_or_translated.chat_answer(endpoint, call)
    message = chat_to_message(answer, parsed.model, stops)
    return Response(orjson.dumps(message), media_type="application/json")


FAMILY = native_or_translated.Family(
    operation=OPERATION,
    config_key="messages_api",
    dialect=Dialect.ANTHROPIC,
    terminal=(b'"message_stop"', b"event: error"),
    translated=translated,
)
chat_only = FAMILY.chat_only
mode_of = FAMILY.mode_of
run = FAMILY.run
