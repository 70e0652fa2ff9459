"""An OpenAI chat/completions SSE stream rewritten, as it arrives, into Responses stream events.

The Responses sequence: response.created, response.in_progress; per output item
response.output_item.added, then for a message response.content_part.added,
response.output_text.delta ... response.output_text.done, response.content_part.done, and for
a function call response.function_call_arguments.delta ... .done; response.output_item.done;
at the end response.completed (or response.incomplete). Every event has a `sequence_number`.
A failure ends the stream with response.failed and an `error` event, which the official client
raises (its stream reader raises on a payload that carries an `error` object).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.translation.messages_response import as_object, token_counts
from resource_server_async.translation.messages_stream import upstream_error
from resource_server_async.translation.responses_request import ToolNames
from resource_server_async.translation.responses_response import (
    function_call_item,
    incomplete_reason,
    message_item,
    new_id,
    output_text_part,
    response_object,
    usage_of,
)
from resource_server_async.translation.sse import SSEDecoder


@dataclass(slots=True)
class _Item:
    """One output item while it streams: a message's text or a function call's arguments."""

    kind: str  # "message" or "function_call"
    id: str
    index: int  # output_index
    text: str = ""  # the message's text, or the call's arguments
    call_id: str = ""
    name: str = ""
    done: bool = False


class ResponsesStream:
    """Translator for one stream: `start()`, then `feed(bytes)` per upstream read, `finish()`."""

    def __init__(self, request: dict[str, Any], model: str, names: ToolNames) -> None:
        self.request = request
        self.model = model
        self.names = names
        self.response_id = new_id("resp")
        self.created_at = int(time.time())
        self._decoder = SSEDecoder()
        self._sequence = 0
        self._items: list[_Item] = []
        self._message: _Item | None = None  # the open message item, if any
        self._calls: dict[int, _Item] = {}  # chat tool_call index -> item
        self._finish_reason: str | None = None
        self._usage: Any = None
        self._content_chunks = 0
        self._done = False
        self.failed = False

    # --- events ---------------------------------------------------------------------------

    def _event(self, kind: str, **payload: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **payload}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(
            self.request,
            response_id=self.response_id,
            created_at=self.created_at,
            model=self.model,
            status=status,
            **extra,
        )

    def start(self) -> bytes:
        response = self._response("in_progress", output=[])
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def feed(self, chunk: bytes) -> bytes:
        """Responses events for the complete upstream events in `chunk` (b"" when none)."""
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
        incomplete = incomplete_reason(self._finish_reason)
        status = "incomplete" if incomplete else "completed"
        for item in self._items:
            out += self._close(item, status)
        try:
            usage = usage_of(self._usage, self._content_chunks)
        except GatewayError as error:
            return out + self.fail(error)
        response = self._response(
            status, output=self.output(status), usage=usage, incomplete=incomplete
        )
        kind = "response.incomplete" if incomplete else "response.completed"
        return out + self._event(kind, response=response)

    def usage(self) -> tuple[int | None, int, bool]:
        """(prompt tokens, output tokens, estimated) as the stream reported them so far; a
        server that sends no counts streams about one token per content chunk."""
        counts = token_counts(self._usage)
        if counts.completion is not None:
            return counts.prompt, counts.completion, False
        return counts.prompt, self._content_chunks, True

    def fail(self, error: GatewayError) -> bytes:
        """response.failed and the error event that end the client's stream."""
        if self.failed:
            return b""
        self.failed = True
        failure = {"code": error.code, "message": error.message}
        response = self._response("failed", output=self.output("incomplete"), error=failure)
        detail = error.body(Dialect.OPENAI)["error"]
        return self._event("response.failed", response=response) + self._event(
            "error", code=error.code, message=error.message, param=error.param, error=detail
        )

    def output(self, status: str) -> list[dict[str, Any]]:
        """The output items as they stand (what a stored response keeps)."""
        return [self._item_object(item, status) for item in self._items]

    # --- upstream events ------------------------------------------------------------------

    def _on_data(self, data: bytes) -> bytes:
        if self.failed or self._done:
            return b""
        if data.strip() == b"[DONE]":
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
            self._usage = chunk["usage"]
        out = b""
        for choice in chunk.get("choices") or []:
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
        return out

    def _text(self, text: str) -> bytes:
        out = b""
        item = self._message
        if item is None:
            item = self._message = self._open("message", new_id("msg"))
            out += self._event(
                "response.output_item.added",
                output_index=item.index,
                item={**message_item(item.id, "", "in_progress"), "content": []},
            )
            out += self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                part=output_text_part(""),
            )
        item.text += text
        self._content_chunks += 1
        return out + self._event(
            "response.output_text.delta",
            item_id=item.id,
            output_index=item.index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        out = b""
        position = call.get("index", 0)
        function = as_object(call.get("function"))
        item = self._calls.get(position)
        if item is None:
            # A call after text: the text is finished (calls come last in chat answers).
            if self._message is not None:
                out += self._close(self._message, "completed")
                self._message = None
            item = self._open("function_call", new_id("fc"))
            item.call_id = str(call.get("id") or new_id("call"))
            item.name = str(function.get("name") or "")
            self._calls[position] = item
            out += self._event(
                "response.output_item.added",
                output_index=item.index,
                item=self._item_object(item, "in_progress"),
            )
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.text += arguments
            self._content_chunks += 1
            out += self._event(
                "response.function_call_arguments.delta",
                item_id=item.id,
                output_index=item.index,
                delta=arguments,
            )
        return out

    # --- items -----------------------------------------------------------------------------

    def _open(self, kind: str, item_id: str) -> _Item:
        item = _Item(kind, item_id, len(self._items))
        self._items.append(item)
        return item

    def _item_object(self, item: _Item, status: str) -> dict[str, Any]:
        if item.kind == "message":
            return message_item(item.id, item.text, status)
        arguments = item.text if status == "in_progress" or item.text else "{}"
        return function_call_item(item.id, item.call_id, item.name, arguments, status, self.names)

    def _close(self, item: _Item, status: str) -> bytes:
        if item.done:
            return b""
        item.done = True
        out = b""
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == "message":
            out += self._event(
                "response.output_text.done", **where, content_index=0, text=item.text, logprobs=[]
            )
            out += self._event(
                "response.content_part.done",
                **where,
                content_index=0,
                part=output_text_part(item.text),
            )
        else:
            final = self._item_object(item, "completed")
            out += self._event(
                "response.function_call_arguments.done",
                **where,
                name=final["name"],
                arguments=final["arguments"],
            )
        return out + self._event(
            "response.output_item.done",
            output_index=item.index,
            item=self._item_object(item, "completed" if item.kind != "message" else status),
        )
