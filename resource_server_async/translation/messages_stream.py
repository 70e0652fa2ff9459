"""An OpenAI chat/completions SSE stream rewritten, as it arrives, into Anthropic stream events.

The Anthropic sequence is: message_start, ping, then per content block content_block_start,
content_block_delta (text_delta or input_json_delta) ... content_block_stop, and at the end
message_delta (stop_reason, usage) and message_stop. An upstream error becomes `event: error`.
"""

from __future__ import annotations

from typing import Any

import orjson

from resource_server_async.errors import Dialect, GatewayError, sse_error_event
from resource_server_async.translation.chat_stream import ChatStreamReader
from resource_server_async.translation.messages_response import (
    as_object,
    new_message_id,
    new_tool_use_id,
    stop_reason,
)


def event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessagesStream(ChatStreamReader):
    """Translator for one stream: `start()`, then `feed(bytes)` per upstream read, `finish()`."""

    def __init__(self, model: str, stop_sequences: list[str] | None = None) -> None:
        super().__init__()
        self.model = model
        self.stop_sequences = stop_sequences or []
        self.message_id = new_message_id()
        self._block = -1  # index of the open Anthropic content block, -1 when none is open
        self._block_kind = ""  # "text" or "tool_use"
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool_call index -> Anthropic block
        self._blocks = 0

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

    def _closing(self) -> bytes:
        reason, sequence = stop_reason(
            self._finish_reason or "stop",
            self._matched_stop,
            self.stop_sequences,
            bool(self._tool_blocks),
        )
        prompt, output, _estimated = self.usage()
        usage = {"output_tokens": output}
        if prompt:
            usage["input_tokens"] = prompt
        return (
            self._close_block()
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

    def _text(self, text: str) -> bytes:
        out = b""
        if self._block_kind != "text":
            out += self._close_block() + self._open_block("text", {"type": "text", "text": ""})
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
