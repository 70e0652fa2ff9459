"""The fake model server of tests/fake_backend.py, grown what the Anthropic tests need to see.

- `native=True` also serves Anthropic Messages at /v1/messages (streaming too), answering
  "Native: <last user text>" so that a pass-through is told from a translation, and
  /v1/messages/count_tokens (the `input_tokens` its /v1/messages reports);
  `native=False` answers (and records) 404 there, as servers that speak only OpenAI do.
- Its chat/completions honours what translated stop reasons come from: with `tools` it calls the
  first tool (finish_reason "tool_calls") and, given the tool's result, answers "Tool said: ...";
  `max_tokens` cuts the answer (finish_reason "length"); a `stop` string that occurs ends it
  before that word and is reported as vLLM does (`choice.stop_reason`).

Faults (`{"fake": {...}}` in the body) work as in FakeBackend, on both routes; on /v1/messages,
`{"fake": {"no_message_stop": true}}` ends a stream cleanly but without its message_stop; on
chat/completions, `{"fake": {"usage": {...}}}` replaces fields of the reported usage.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fake_backend import (
    FakeBackend,
    Faults,
    Recorded,
    _event,
    _text_of,
    _words,
    prompt_tokens,
)


@dataclass
class Answer:
    """What the fake model says: words, or one tool call, and why it stopped."""

    words: list[str]
    finish: str
    stop_string: str | None = None
    tool: dict[str, Any] | None = None  # {"id", "name", "arguments"}


def _last(messages: list[Any], role: str) -> dict[str, Any] | None:
    found = [m for m in messages if isinstance(m, dict) and m.get("role") == role]
    return found[-1] if found else None


def chat_answer(body: dict[str, Any], faults: Faults) -> Answer:
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    tools = body.get("tools") or []
    if last.get("role") == "tool":
        words = _words("Tool said: " + _text_of(last.get("content")))
    elif tools:
        user = _last(messages, "user")
        arguments = orjson.dumps({"query": _text_of(user.get("content")) if user else ""})
        tool = {
            "id": f"call_{uuid.uuid4().hex[:8]}",
            "name": tools[0]["function"]["name"],
            "arguments": arguments.decode(),
        }
        return Answer([], "tool_calls", tool=tool)
    else:
        user = _last(messages, "user")
        words = _words("Echo: " + (_text_of(user.get("content")) if user else ""))
    while len(words) < faults.chunks:
        words.append(f"w{len(words)}")
    stops = body.get("stop") or []
    for stop in [stops] if isinstance(stops, str) else stops:
        if stop in words:
            return Answer(words[: words.index(stop)], "stop", stop_string=stop)
    limit = body.get("max_tokens")
    if isinstance(limit, int) and len(words) > limit:
        return Answer(words[:limit], "length")
    return Answer(words, "stop")


@dataclass
class MessagesBackend(FakeBackend):
    native: bool = False

    def app(self) -> web.Application:
        app = super().app()  # its chat route calls self._chat: the one below
        app.router.add_post("/v1/messages", self._messages if self.native else self._no_messages)
        if self.native:
            app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        return app

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        body, _, early = await self._begin(request)
        if early is not None:
            return early
        return self._json(
            200, orjson.dumps({"input_tokens": prompt_tokens(body.get("messages") or [])})
        )

    async def _no_messages(self, request: web.Request) -> web.Response:
        """Recorded, then FastAPI's 404 for an unknown route, as llama-cpp-python answers."""
        self.requests.append(
            Recorded(request.method, request.path, dict(request.headers), await request.read())
        )
        return self._json(404, b'{"detail":"Not Found"}')

    # --- chat/completions ------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, faults, early = await self._begin(request)
        if early is not None:
            return early
        answer = chat_answer(body, faults)
        text = " ".join(answer.words)
        calls = []
        if answer.tool is not None:
            calls = [
                {
                    "id": answer.tool["id"],
                    "type": "function",
                    "function": {
                        "name": answer.tool["name"],
                        "arguments": answer.tool["arguments"],
                    },
                }
            ]
        prompt = prompt_tokens(body.get("messages") or [])
        completion = len(answer.words) + (3 if calls else 0)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        fake = body.get("fake")
        if isinstance(fake, dict) and isinstance(fake.get("usage"), dict):
            usage.update(fake["usage"])  # counts a broken server might send
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "created": int(time.time()),
            "model": body["model"],
        }
        finish = {"finish_reason": answer.finish, "stop_reason": answer.stop_string}
        if body.get("stream") is not True:
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                message["tool_calls"] = calls
            choice = {"index": 0, "message": message, **finish}
            return self._json(
                200,
                orjson.dumps(
                    {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
                ),
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": None, **extra}
            return _event({**base, "object": "chat.completion.chunk", "choices": [choice]})

        def events() -> Iterable[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            for index, word in enumerate(answer.words):
                yield chunk({"content": word if index == 0 else " " + word})
            if answer.tool is not None:
                head = {"index": 0, "id": answer.tool["id"], "type": "function"}
                yield chunk({"tool_calls": [{**head, "function": {"name": answer.tool["name"]}}]})
                arguments = answer.tool["arguments"]
                middle = len(arguments) // 2
                for part in (arguments[:middle], arguments[middle:]):
                    yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
            if not faults.no_finish:  # as FakeBackend: [DONE] without the final chunk
                yield chunk({}, **finish)
            if include_usage:
                yield _event(
                    {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                )

        return await self._stream(request, faults, events(), done=True)

    # --- Anthropic Messages, natively ----------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, faults, early = await self._begin(request)
        if early is not None:
            return early
        user = _last(body.get("messages") or [], "user")
        words = _words("Native: " + (_text_of(user.get("content")) if user else ""))
        while len(words) < faults.chunks:
            words.append(f"w{len(words)}")
        usage = {
            "input_tokens": prompt_tokens(body.get("messages") or []),
            "output_tokens": len(words),
        }
        message = {
            "id": f"msg_native_{uuid.uuid4().hex[:8]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": " ".join(words)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if body.get("stream") is not True:
            return self._json(200, orjson.dumps(message))

        def events() -> Iterable[bytes]:
            start = {
                **message,
                "content": [],
                "stop_reason": None,
                "usage": {**usage, "output_tokens": 0},
            }
            yield _event({"type": "message_start", "message": start}, "message_start")
            yield _event(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            )
            yield _event({"type": "ping"}, "ping")
            for index, word in enumerate(words):
                delta = {"type": "text_delta", "text": word if index == 0 else " " + word}
                yield _event(
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                    "content_block_delta",
                )
            yield _event({"type": "content_block_stop", "index": 0}, "content_block_stop")
            yield _event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(words)},
                },
                "message_delta",
            )
            if not (body.get("fake") or {}).get("no_message_stop"):
                yield _event({"type": "message_stop"}, "message_stop")

        return await self._stream(request, faults, events(), done=False)
