"""Token counts of relayed streams, and the usage chunk the gateway asks for on the client's behalf.

A chat/completions or completions stream carries usage only when the request says
`stream_options: {"include_usage": true}`. When the client did not ask, the gateway asks
(`ask_for_usage`) and takes that extra chunk (no choices, only usage) out of what the client
receives, so the client's stream is byte for byte what it would have been. A server that
refuses the option (its 400 names it) is remembered for a while, like a server without
/v1/messages; its streams, and those of endpoints configured with
`stream_include_usage: false`, are counted from the stream itself and flagged as estimated.

Cheap per chunk: OpenAI streams are searched only once the finish reason went by (the usage
chunk comes after it); other streams (Messages, Responses) with one substring search.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.accounting.tokens import Usage, usage_in_answer
from resource_server_async.errors import GatewayError

# How long a server's refusal of stream_options is believed: an upgraded server is found again.
REFUSAL_SECONDS = 600.0
# Servers stream about one token per content chunk; prompts are about four bytes per token.
_PROMPT_BYTES_PER_TOKEN = 4
# Bytes of a non-OpenAI stream held to frame an event cut between two reads.
_MAX_CARRY = 64 * 1024


class UsageRefusers:
    """Endpoints (by slug) whose server refused `stream_options`, until a monotonic time."""

    def __init__(self, seconds: float = REFUSAL_SECONDS) -> None:
        self.seconds = seconds
        self._until: dict[str, float] = {}

    def remember(self, slug: str) -> None:
        self._until[slug] = time.monotonic() + self.seconds

    def known(self, slug: str) -> bool:
        until = self._until.get(slug)
        return until is not None and until > time.monotonic()

    def clear(self) -> None:
        self._until.clear()


usage_refusers = UsageRefusers()


def client_asked(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def ask_for_usage(body: dict[str, Any]) -> dict[str, Any]:
    """The body with `stream_options.include_usage` on (other options the client set kept)."""
    options = body.get("stream_options")
    options = {**options, "include_usage": True} if isinstance(options, dict) else {}
    options["include_usage"] = True
    return {**body, "stream_options": options}


def refuses_usage_option(error: GatewayError) -> bool:
    """The server's own 400 about stream_options (not a gateway error)."""
    info = error.info or {}
    return (
        error.status == 400
        and info.get("upstream_status") == 400
        and "stream_options" in (error.message + str(error.param or ""))
    )


def _events(data: bytes) -> list[bytes]:
    return [event for event in data.replace(b"\r\n", b"\n").split(b"\n\n") if event.strip()]


def _payload(event: bytes) -> Any:
    lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
    try:
        return orjson.loads(b"\n".join(lines)) if lines else None
    except orjson.JSONDecodeError:
        return None


class StreamUsage:
    """Reads one relayed stream's usage as its events go by, then records it on the outcome.

    `strip`: the gateway asked for usage and the client did not; the usage-only chunk is
    removed. `estimate`: nobody could ask; count content chunks instead.
    """

    __slots__ = ("_carry", "_chunks", "_found", "_prompt_bytes", "estimate", "outcome", "strip")

    def __init__(
        self, outcome: RequestOutcome, *, strip: bool, estimate: bool, prompt_bytes: int = 0
    ) -> None:
        self.outcome = outcome
        self.strip = strip
        self.estimate = estimate
        self._prompt_bytes = prompt_bytes
        self._found: Usage | None = None
        self._chunks = 0
        self._carry = b""

    def feed_framed(self, ready: bytes, finished: bool) -> bytes:
        """OpenAI events framed by the DoneGate; `finished`: a finish reason went by."""
        if self.estimate:
            self._chunks += ready.count(b"data:")
            return ready
        # find, not `in` (upstream/done_gate.py says why: per chunk, `in` costs a TypeError).
        if not finished or ready.find(b'"usage"') < 0:
            return ready
        kept: list[bytes] = []
        for event in _events(ready):
            if b'"usage"' in event and self._take(event):
                continue
            kept.append(event + b"\n\n")
        return b"".join(kept)

    def _take(self, event: bytes) -> bool:
        """Note the usage in `event`; True when the event is to be removed."""
        payload = _payload(event)
        if not isinstance(payload, dict):
            return False
        usage = usage_in_answer(payload)
        if usage is None:
            return False
        self._found = usage
        return self.strip and payload.get("choices") == []

    def feed_raw(self, chunk: bytes) -> None:
        """Events of a stream that is passed on as it is (Messages, Responses)."""
        buffer = self._carry + chunk if self._carry else chunk
        end = max(buffer.rfind(b"\n\n"), buffer.rfind(b"\r\n\r\n"))
        if end < 0:
            self._carry = buffer if len(buffer) <= _MAX_CARRY else b""
            return
        ready, self._carry = buffer[:end], buffer[end:].lstrip(b"\r\n")
        if ready.find(b'"usage"') < 0:
            return
        for event in _events(ready):
            if b'"usage"' in event:
                payload = _payload(event)
                usage = usage_in_answer(payload) if isinstance(payload, dict) else None
                if usage is not None:
                    if self._found is None:
                        self._found = usage
                    else:
                        self._found.merge(usage)

    def end(self) -> None:
        """The stream ended (whole or not): record what was counted."""
        if self._found is not None:
            self._found.apply(self.outcome)
        elif self.estimate and self._chunks:
            # The finish chunk carries no token.
            completion = max(self._chunks - 1, 0)
            prompt = self._prompt_bytes // _PROMPT_BYTES_PER_TOKEN
            self.outcome.set_usage(prompt, completion, estimated=True)
