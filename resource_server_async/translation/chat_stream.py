"""What every translation of a chat/completions stream shares: reading the server's events.

A family's translator (Messages, Responses) subclasses `ChatStreamReader` and writes its own
events from `_text`, `_tool_call` and `_closing`; this class decodes the SSE, follows the first
choice, keeps the finish reason and the usage, and turns an error event, a malformed event or a
stream that stops before its finish reason into the family's `fail(error)`.
"""

from __future__ import annotations

from typing import Any

import orjson

from resource_server_async.errors import GatewayError
from resource_server_async.translation.messages_response import (
    TokenCounts,
    as_object,
    token_counts,
)
from resource_server_async.translation.sse import SSEDecoder


def upstream_error(error: Any) -> GatewayError:
    """The model server's in-stream error object as the caller's error."""
    if isinstance(error, dict):
        message = str(error.get("message") or "The model server reported an error.")
    else:
        message = str(error)
    return GatewayError(502, "upstream_error", f"The model server failed mid-stream: {message}")


class ChatStreamReader:
    """The server side of one translated stream: `feed(bytes)` per read, then `finish()`."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._finish_reason: str | None = None
        self._matched_stop: Any = None  # vLLM's `stop_reason`: the stop string that matched
        self._usage: Any = None  # the server's last `usage` object, as it sent it
        self._counts = TokenCounts()
        self._content_chunks = 0
        self._done = False
        self.failed = False

    # --- what a family writes -------------------------------------------------------------

    def fail(self, error: GatewayError) -> bytes:
        raise NotImplementedError

    def _text(self, text: str) -> bytes:
        raise NotImplementedError

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def _closing(self) -> bytes:
        """The family's last events, once the server's stream ended whole."""
        raise NotImplementedError

    # --- the shared reading ---------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        """The family's events for the complete upstream events in `chunk` (b"" when none)."""
        if self.failed or self._done:
            return b""
        return b"".join(self._on_data(data) for data in self._decoder.feed(chunk))

    def finish(self) -> bytes:
        """The closing events once the upstream stream ended; an error if it broke off."""
        if self.failed:
            return b""
        out = b"".join(self._on_data(data) for data in self._decoder.flush())
        if self.failed:
            return out
        if not self._done and self._finish_reason is None:
            return out + self.fail(
                GatewayError(
                    502,
                    "upstream_stream_interrupted",
                    "The model server's stream ended before the answer was complete.",
                )
            )
        self._done = True
        return out + self._closing()

    def usage(self) -> tuple[int | None, int, bool]:
        """(prompt tokens, output tokens, estimated) as the stream reported them so far."""
        if self._counts.completion is not None:
            return self._counts.prompt, self._counts.completion, False
        # Servers that ignore stream_options send no counts; they stream about one token per
        # chunk, which is the best estimate there is.
        return self._counts.prompt, self._content_chunks, True

    def _on_data(self, data: bytes) -> bytes:
        if self.failed or self._done:
            return b""
        if data.strip() == b"[DONE]":
            # Only mark it: finish() writes the closing events once the upstream closes.
            self._finish_reason = self._finish_reason or "stop"
            return b""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self.fail(
                GatewayError(
                    502, "upstream_malformed_answer", "The model server sent a malformed event."
                )
            )
        if not isinstance(chunk, dict):
            return b""
        if "error" in chunk:
            return self.fail(upstream_error(chunk["error"]))
        if chunk.get("usage") is not None:
            try:
                self._counts = token_counts(chunk["usage"])
            except GatewayError as error:
                return self.fail(error)
            self._usage = chunk["usage"]
        out = b""
        for choice in chunk.get("choices") or []:
            # One answer per request; n > 1 is not asked for by the translators.
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out += self._on_choice(choice)
        return out

    def _on_choice(self, choice: dict[str, Any]) -> bytes:
        out = b""
        delta = as_object(choice.get("delta"))
        text = delta.get("content")
        if isinstance(text, str) and text:
            self._content_chunks += 1
            out += self._text(text)
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                out += self._tool_call(call)
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
            self._matched_stop = choice.get("stop_reason")
        return out
