"""Running an API family (Messages, Responses) natively, or translated to chat/completions.

A model server that speaks the family gets the client's request as it came. One that does not
gets it as chat/completions and its answer (or stream) is translated back. An endpoint's config
says which ("native", "translate", or "auto", the default: try the family's own route, and if
the server answers 404, remember that for a while and translate). This module holds what the
families share: the mode, the remembered 404s, the chat/completions call and the translated
stream's loop; each family's module (`messages_api`, `responses_api`) brings its translators.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from starlette.responses import Response

from resource_server_async.endpoints.base import BaseEndpoint, InferenceRequest
from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.inference import pipeline
from resource_server_async.upstream import errors as upstream_errors
from resource_server_async.upstream.done_gate import DoneGate

logger = logging.getLogger(__name__)

MODES = ("auto", "native", "translate")
# How long a server's 404 on the family's route is believed: an upgraded server is found again.
CHAT_ONLY_SECONDS = 600.0


class ChatOnlyServers:
    """Endpoints (by slug) whose server answered 404 to a family's route, until a monotonic time."""

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


def no_native_route(error: GatewayError) -> bool:
    """The server's own 404 (not the gateway's): it has no route for the family."""
    return error.status == 404 and (error.info or {}).get("upstream_status") == 404


# Runs a validated request on one endpoint, natively or translated.
Way = Callable[[BaseEndpoint, pipeline.ParsedRequest], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Family:
    """An API family that a model server may speak itself, or that is translated to chat."""

    operation: str  # "messages", "responses": the route under /v1/ and the native call's
    config_key: str  # the endpoint config key that holds the mode: "messages_api"
    dialect: Dialect
    # What a whole native stream carries (its last event, or an error event); each is quoted
    # or an event line, so that a model's text, JSON-escaped, cannot imitate it.
    terminal: tuple[bytes, ...]
    translated: Way
    chat_only: ChatOnlyServers = field(default_factory=ChatOnlyServers)

    def mode_of(self, endpoint: BaseEndpoint) -> str:
        """The endpoint's mode for this family; adapters without the key are "auto"."""
        mode = getattr(endpoint.config, self.config_key, "auto")
        return mode if mode in MODES else "auto"

    async def run(self, endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
        """The answer on `endpoint`, natively or translated as its mode says."""
        mode = self.mode_of(endpoint)
        if mode == "translate" or (mode == "auto" and self.chat_only.known(endpoint)):
            return await self.translated(endpoint, parsed)
        try:
            return await self.native(endpoint, parsed)
        except GatewayError as error:
            if mode == "native" or not no_native_route(error):
                raise
        logger.info("%r has no /v1/%s; translating to chat/completions", endpoint, self.operation)
        self.chat_only.remember(endpoint)
        return await self.translated(endpoint, parsed)

    async def native(self, endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
        """The client's request passed through to the server's own route."""
        call = pipeline.prepare(endpoint, self.operation, parsed)
        if not call.stream:
            return pipeline.json_response(await endpoint.complete(call), endpoint, call)
        chunks = await endpoint.open_stream(call)
        events = pipeline.relay(self._until_whole(chunks, endpoint), self.dialect, endpoint, call)
        return pipeline.EventStreamResponse(events, dialect=self.dialect)

    async def _until_whole(
        self, chunks: AsyncIterator[bytes], endpoint: BaseEndpoint
    ) -> AsyncIterator[bytes]:
        """The server's own stream; one that ends without a terminal event was cut off, and
        the client must be told rather than left guessing."""
        whole = False
        carry = b""  # the end of the last chunk: a marker may straddle two reads
        keep = max(map(len, self.terminal)) - 1
        try:
            async for chunk in chunks:
                if not whole:
                    window = carry + chunk
                    whole = any(marker in window for marker in self.terminal)
                    carry = window[-keep:]
                yield chunk
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if not whole:
            raise upstream_errors.stream_cut(endpoint)


def chat_call(parsed: pipeline.ParsedRequest, body: dict[str, Any]) -> InferenceRequest:
    """The translated request: `body` (a chat/completions body) for the parsed request's caller."""
    return InferenceRequest(
        operation="chat/completions",
        body=body,
        raw=pipeline.encode_body(body),
        principal=parsed.principal,
        request_id=parsed.request_id,
        stream=parsed.stream,
        outcome=parsed.outcome,
    )


async def chat_answer(endpoint: BaseEndpoint, call: InferenceRequest) -> Any:
    """The parsed JSON of the server's non-streaming chat/completions answer; its failures
    as the caller's errors."""
    reply = await endpoint.complete(call)
    if not 200 <= reply.status < 300:
        error = upstream_errors.reply_error(reply.status, reply.body, endpoint)
        raise upstream_errors.report(error, endpoint, call.request_id)
    try:
        return orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        error = upstream_errors.broken(endpoint, "its answer is not JSON")
        raise upstream_errors.report(error, endpoint, call.request_id) from None


class StreamTranslator(Protocol):
    """One stream's translator: `start()`, `feed(bytes)` per upstream read, `finish()`;
    `fail(error)` ends the client's stream with an error event, after which `failed` is true."""

    failed: bool

    def start(self) -> bytes: ...

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def fail(self, error: GatewayError) -> bytes: ...

    def usage(self) -> tuple[int | None, int | None, bool]:
        """(prompt tokens, output tokens, estimated): what the record counts (accounting/)."""
        ...


# The translation reports its own failures (a cut, an upstream error event) as error events
# without their codes; the operator's log names them with this one.
_TRANSLATED_CUT = GatewayError(502, "upstream_stream_interrupted", "translated stream failed")


async def translate_stream(
    chunks: AsyncIterator[bytes],
    stream: StreamTranslator,
    endpoint: BaseEndpoint,
    call: InferenceRequest,
) -> AsyncIterator[bytes]:
    """The client's stream: the server's chat/completions chunks through `stream`."""
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
        if call.outcome is not None:
            prompt, output, estimated = stream.usage()
            call.outcome.set_usage(prompt, output, estimated=estimated)
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
