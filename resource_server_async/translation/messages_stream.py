"""An OpenAI chat/completions SSE stream rewritten, as it arrives, into Anthropic stream events.

The Anthropic sequence is: message_start, ping, then per content block content_block_start,
content_block_delta (text_delta or input_json_delta) ... content_block_stop, and at the end
message_delta (stop_reason, usage) and message_stop. An upstream error becomes `event: error`.
"""

from __future__ import annotations

from typing import Any

import orjson

from resource_server_async.errors import Dialect, GatewayError, sse_error_event
from resource_server_async.translation.messages_response import (
    TokenCounts,
    as_object,
    new_message_id,
    new_tool_use_id,
    stop_reason,
    token_counts,
)
from resource_server_async.translation.sse import SSEDecoder


def event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessagesStream:
    """Translator for one stream: `start()`, then `feed(bytes)` per upstream read, `finish()`."""

    def __init__(self, model: str, stop_sequences: list[str] | None = None) -> None:
        self.model = model
        self.stop_sequences = stop_sequences or []
        self.message_id = new_message_id()
        self._decoder = SSEDecoder()
        self._block = -1  # index of the open Anthropic content block, -1 when none is open
        self._block_kind = ""  # "text" or "tool_use"
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool_call index -> Anthropic block
        self._blocks = 0
        self._finish_reason: str | None = None
        self._matched_stop: Any = None
        self._counts = TokenCounts()
        self._content_chunks = 0
        self._done = False
        self.failed = False

    # --- the events ---------------------------------------------------------------------------

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # Counts are unknown until the upstream's last chunk; message_delta carries them.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return event("message_start", {"type": "message_start", "message": message}) + event(
            "ping", {"type": "ping"}
        )

    def feed(self, chunk: bytes) -> bytes:
        """Anthropic events for the complete upstream events in `chunk` (b"" when none)."""
        if self.failed or self._done:
            return b""
        return b"".join(self._on_data(data) for data in self._decoder.feed(chunk))

    def finish(self) -> bytes:
        """The closing events once the upstream stream ended; an error event if it broke off."""
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
        reason, sequence = stop_reason(
            self._finish_reason or "stop",
            self._matched_stop,
            self.stop_sequences,
            bool(self._tool_blocks),
        )
        usage = {"output_tokens": self._output_tokens()}
        if self._counts.prompt:
            usage["input_tokens"] = self._counts.prompt
        self._done = True
        return (
            out
            + self._close_block()
            + event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": sequence},
                    "usage": usage,
                },
            )
            + event("message_stop", {"type": "message_stop"})
        )

    def fail(self, error: GatewayError) -> bytes:
        """The error event that ends the client's stream; nothing more is sent after it."""
        if self.failed:
            return b""
        self.failed = True
        return sse_error_event(error, Dialect.ANTHROPIC)

    # --- upstream events ------------------------------------------------------------------

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
        out = b""
        for choice in chunk.get("choices") or []:
            # Messages has one answer per request; n > 1 is not asked for by the translator.
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out += self._on_choice(choice)
        return out

    def _on_choice(self, choice: dict[str, Any]) -> bytes:
        out = b""
        delta = as_object(choice.get("delta"))
        text = delta.get("content")
        if isinstance(text, str) and text:
            out += self._text(text)
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                out += self._tool_call(call)
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
            self._matched_stop = choice.get("stop_reason")
        return out

    def _text(self, text: str) -> bytes:
        out = b""
        if self._block_kind != "text":
            out += self._close_block() + self._open_block("text", {"type": "text", "text": ""})
        self._content_chunks += 1
        return out + self._delta({"type": "text_delta", "text": text}, self._block)

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        out = b""
        index = call.get("index", 0)
        function = as_object(call.get("function"))
        if index not in self._tool_blocks:
            out += self._close_block() + self._open_block(
                "tool_use",
                {
                    "type": "tool_use",
                    "id": call.get("id") or new_tool_use_id(),
                    "name": function.get("name") or "",
                    "input": {},
                },
            )
            self._tool_blocks[index] = self._block
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._content_chunks += 1
            # A fragment for an earlier call still belongs to that call's block.
            out += self._delta(
                {"type": "input_json_delta", "partial_json": arguments}, self._tool_blocks[index]
            )
        return out

    # --- blocks ----------------------------------------------------------------------------

    def _open_block(self, kind: str, block: dict[str, Any]) -> bytes:
        self._block = self._blocks
        self._blocks += 1
        self._block_kind = kind
        return event(
            "content_block_start",
            {"type": "content_block_start", "index": self._block, "content_block": block},
        )

    def _close_block(self) -> bytes:
        if self._block < 0:
            return b""
        index, self._block, self._block_kind = self._block, -1, ""
        return event("content_block_stop", {"type": "content_block_stop", "index": index})

    @staticmethod
    def _delta(delta: dict[str, Any], index: int) -> bytes:
        return event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def usage(self) -> tuple[int | None, int, bool]:
        """(prompt tokens, output tokens, estimated) as the stream reported them so far."""
        return self._counts.prompt, self._output_tokens(), self._counts.completion is None

    def _output_tokens(self) -> int:
        if self._counts.completion is not None:
            return self._counts.completion
        # Servers that ignore stream_options send no counts; they stream about one token per
        # chunk, which is the best estimate there is.
        return self._content_chunks


def upstream_error(error: Any) -> GatewayError:
    if isinstance(error, dict):
        message = str(error.get("message") or "The model server reported an error.")
    else:
        message = str(error)
    return GatewayError(502, "upstream_error", f"The model server failed mid-stream: {message}")
