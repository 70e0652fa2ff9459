"""A fake OpenAI-compatible model server on loopback, with fault injection, for tests and bench.

Answers /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses (streaming too) and
GET /v1/models in OpenAI's shapes, deterministically (the reply echoes the prompt). Its tokenizer
routes count as its chat usage does (a token is a word of the messages' text, `prompt_tokens`):
vLLM's POST /tokenize (`messages` or `prompt`; `count`, `tokens`), llama.cpp's POST /tokenize
(`content`; `tokens`), llama-cpp-python's POST /extras/tokenize (`input`; `tokens`) and
/extras/tokenize/count (`count`). One server
serves many tests: faults are chosen per request, by a `fake` object in the JSON body (which the
gateway forwards like any unknown field) or by X-Fake-* headers (for direct calls):

    {"fake": {"status": 500}}          answer with this HTTP status and an OpenAI-style error
    {"fake": {"delay": 0.5}}           wait before answering (seconds)
    {"fake": {"malformed": true}}      answer 200 with a truncated JSON body
    {"fake": {"stop_after": 2}}        stream: drop the connection after 2 events, mid-stream
    {"fake": {"chunk_delay": 0.2}}     stream: wait between events (a slow stream)
    {"fake": {"chunks": 50}}           stream: at least this many content events
    {"fake": {"no_done": true}}        stream: end cleanly but without `data: [DONE]`
    {"fake": {"id": "s1"}}             stream: name it, to look up `streams["s1"]` afterwards
                                       (a non-streaming call: `calls["s1"]`, `sent["s1"]`)
    {"fake": {"message": "..."}}       with "status": the error message to answer with
    {"fake": {"no_finish": true}}      stream: send `data: [DONE]` but no chunk with a finish
                                       reason (what llama.cpp does to a request it aborts)
    {"fake": {"answer_bytes": N}}      chat: a 200 answer of about N bytes, written in 64 KiB
                                       pieces (`sent[id]` counts what reached the socket);
                                       chunked, or with "declare_length": true a Content-Length
    {"fake": {"no_completed": true}}   responses stream: end cleanly but without its terminal
                                       response.completed event

Streams of chat/completions and completions end with a usage-only chunk (no choices) when the
request says `stream_options: {"include_usage": true}`, as vLLM's do; `{"fake": {"fixed_id":
true}}` gives every answer the same id and time (to compare streams byte for byte), and
`{"fake": {"refuse_stream_options": true}}` answers 400 to a request with `stream_options`.

`FakeBackend(responses=False)` has no /v1/responses: it answers 404 there (recorded), as servers
that speak only chat/completions do, so that the gateway's "auto" mode falls back.

It records every request (method, path, headers, body) and what became of each stream, and can
serve a Metis-style status page (GET /status) from `status_document` (failing with
`status_http_status` when that is not 200).

Standalone (the benchmark reuses it): python -m tests.fake_backend --port 8081 [--api-key KEY]
[--capacity 8 --service-seconds 0.05] (a server that serves at most 8 chat requests at once).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

SSE = "text/event-stream"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class Faults:
    status: int | None = None
    delay: float = 0.0
    malformed: bool = False
    stop_after: int | None = None
    chunk_delay: float = 0.0
    chunks: int = 0
    no_done: bool = False
    id: str | None = None  # names the stream in FakeBackend.streams
    message: str | None = None
    no_finish: bool = False
    answer_bytes: int = 0
    declare_length: bool = False
    refuse_stream_options: bool = False  # a 400 naming stream_options, as some servers answer
    fixed_id: bool = False  # the same chunk id and time in every answer (to compare bytes)

    @classmethod
    def of(cls, request: web.Request, body: Any) -> Faults:
        spec: dict[str, Any] = {}
        if isinstance(body, dict) and isinstance(body.get("fake"), dict):
            spec.update(body["fake"])
        for name in ("status", "delay", "malformed", "stop_after", "chunk_delay", "chunks"):
            header = request.headers.get("X-Fake-" + name.replace("_", "-").title())
            if header is not None:
                spec[name] = header.lower() in ("1", "true") if name == "malformed" else header
        return cls(
            status=int(spec["status"]) if spec.get("status") is not None else None,
            delay=float(spec.get("delay", 0)),
            malformed=bool(spec.get("malformed", False)),
            stop_after=int(spec["stop_after"]) if spec.get("stop_after") is not None else None,
            chunk_delay=float(spec.get("chunk_delay", 0)),
            chunks=int(spec.get("chunks", 0)),
            no_done=bool(spec.get("no_done", False)),
            id=str(spec["id"]) if spec.get("id") is not None else request.headers.get("X-Fake-Id"),
            message=str(spec["message"]) if spec.get("message") is not None else None,
            no_finish=bool(spec.get("no_finish", False)),
            answer_bytes=int(spec.get("answer_bytes", 0)),
            declare_length=bool(spec.get("declare_length", False)),
            refuse_stream_options=bool(spec.get("refuse_stream_options", False)),
            fixed_id=bool(spec.get("fixed_id", False)),
        )


def _words(text: str) -> list[str]:
    return text.split()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def prompt_tokens(messages: list[Any]) -> int:
    """The prompt's tokens as this server counts them: the words of each message's text."""
    return sum(len(_words(_text_of(m.get("content")))) for m in messages if isinstance(m, dict))


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128, 6) for i in range(dimensions)]


def _error_body(status: int, message: str) -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return orjson.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": status}}
    )


def _event(data: Any, name: str | None = None) -> bytes:
    prefix = f"event: {name}\n".encode() if name else b""
    return prefix + b"data: " + orjson.dumps(data) + b"\n\n"


@dataclass
class FakeBackend:
    """The server's state; `app()` builds the aiohttp application around it."""

    api_key: str | None = None
    models: tuple[str, ...] = ("fake-model",)
    status_document: dict[str, Any] = field(default_factory=dict)
    status_http_status: int = 200  # set to e.g. 500 to make the status page fail
    responses: bool = True  # False: /v1/responses answers 404, as a chat-only server
    # A server of bounded capacity (fair share): at most `capacity` chat requests served at
    # once, each taking `service_seconds`; the rest wait in the server's own queue. 0: no cap.
    capacity: int = 0
    service_seconds: float = 0.0
    in_flight: int = 0  # chat requests at the server now (served or waiting), and the most
    peak_in_flight: int = 0
    requests: deque[Recorded] = field(default_factory=lambda: deque(maxlen=500))
    # stream id -> "open" | "completed" | "aborted by client" | "cut" (fault stop_after)
    streams: dict[str, str] = field(default_factory=dict)
    # call id -> "waiting" | "answered" | "abandoned by client" (non-streaming, fault id)
    calls: dict[str, str] = field(default_factory=dict)
    # call id -> bytes of an `answer_bytes` answer written before it ended
    sent: dict[str, int] = field(default_factory=dict)
    port: int = 0
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _serving: asyncio.Semaphore | None = None

    # --- state for tests -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def wait_for_stream_end(self, stream_id: str, timeout: float = 5.0) -> str:
        return self._wait_for_change(self.streams, stream_id, "open", timeout)

    def wait_for_call_end(self, call_id: str, timeout: float = 5.0) -> str:
        return self._wait_for_change(self.calls, call_id, "waiting", timeout)

    @staticmethod
    def _wait_for_change(states: dict[str, str], key: str, initial: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = states.get(key, initial)
            if state != initial:
                return state
            time.sleep(0.02)
        return states.get(key, initial)

    # --- HTTP ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._capped if self.capacity else self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/responses", self._responses if self.responses else self._absent)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/tokenize", self._tokenize)
        app.router.add_post("/extras/tokenize", self._tokenize)
        app.router.add_post("/extras/tokenize/count", self._tokenize)
        app.router.add_get("/status", self._status)
        app.router.add_get("/_fake/requests", self._recorded)
        return app

    async def _begin(self, request: web.Request) -> tuple[Any, Faults, web.Response | None]:
        """Record the request, apply delay and status faults; (body, faults, early answer)."""
        raw = await request.read()
        self.requests.append(
            Recorded(
                request.method, request.path, {str(k): v for k, v in request.headers.items()}, raw
            )
        )
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return None, Faults(), self._json(400, _error_body(400, "body is not JSON"))
        faults = Faults.of(request, body)
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return body, faults, self._json(401, _error_body(401, "invalid API key"))
        if faults.delay and not await self._delay(request, faults):
            return body, faults, web.Response(status=499)
        if faults.status is not None:
            message = faults.message or f"fake failure with status {faults.status}"
            return body, faults, self._json(faults.status, _error_body(faults.status, message))
        if not isinstance(body, dict) or "model" not in body:
            return body, faults, self._json(400, _error_body(400, "model is required"))
        if faults.refuse_stream_options and "stream_options" in body:
            message = "Unrecognized request argument supplied: stream_options"
            return body, faults, self._json(400, _error_body(400, message))
        if faults.malformed:
            return body, faults, self._json(200, b'{"id": "cmpl-broken", "choices": [')
        return body, faults, None

    async def _delay(self, request: web.Request, faults: Faults) -> bool:
        """Wait `delay` seconds unless the client hangs up first (then False, and a named
        call is recorded as abandoned): aiohttp does not cancel handlers on disconnect."""
        if faults.id:
            self.calls[faults.id] = "waiting"
        deadline = time.monotonic() + faults.delay
        while time.monotonic() < deadline:
            if request.transport is None or request.transport.is_closing():
                if faults.id:
                    self.calls[faults.id] = "abandoned by client"
                return False
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        if faults.id:
            self.calls[faults.id] = "answered"
        return True

    async def _large_answer(self, request: web.Request, faults: Faults) -> web.StreamResponse:
        """A chat answer of about `answer_bytes`, chunked (no Content-Length), so that only
        the reader's limit stops it."""
        call_id = faults.id or uuid.uuid4().hex
        self.sent[call_id] = 0
        piece = b"x" * (64 * 1024)
        parts = [b'{"object": "chat.completion", "choices": [{"message": {"content": "']
        parts += [piece] * (faults.answer_bytes // len(piece))
        parts.append(b'"}}]}')
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if faults.declare_length:
            response.content_length = sum(map(len, parts))
        await response.prepare(request)
        try:
            for part in parts:
                await response.write(part)
                self.sent[call_id] += len(part)
            await response.write_eof()
            self.calls[call_id] = "answered"
        except (ConnectionError, asyncio.CancelledError):
            self.calls[call_id] = "abandoned by client"
        return response

    @staticmethod
    def _json(status: int, body: bytes) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    async def _stream(
        self, request: web.Request, faults: Faults, events: Iterable[bytes], done: bool
    ) -> web.StreamResponse:
        stream_id = faults.id or uuid.uuid4().hex
        self.streams[stream_id] = "open"
        response = web.StreamResponse(
            headers={"Content-Type": SSE, "Cache-Control": "no-cache", "X-Fake-Stream": stream_id}
        )
        await response.prepare(request)
        try:
            for index, event in enumerate(events):
                if faults.stop_after is not None and index >= faults.stop_after:
                    self.streams[stream_id] = "cut"
                    # Abort: the client sees the chunked body end without its terminator.
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                if faults.chunk_delay and index:
                    await asyncio.sleep(faults.chunk_delay)
                await response.write(event)
            if done and not faults.no_done:
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            self.streams[stream_id] = "completed"
        except (ConnectionError, asyncio.CancelledError):
            self.streams[stream_id] = "aborted by client"
        return response

    async def _capped(self, request: web.Request) -> web.StreamResponse:
        if self._serving is None:  # made in the server's own loop
            self._serving = asyncio.Semaphore(self.capacity)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            async with self._serving:
                await asyncio.sleep(self.service_seconds)  # the model's time on the GPU
                return await self._chat(request)
        finally:
            self.in_flight -= 1

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, faults, early = await self._begin(request)
        if early is not None:
            return early
        if faults.answer_bytes:
            return await self._large_answer(request, faults)
        messages = body.get("messages") or []
        prompt = prompt_tokens(messages)
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        reply = "Echo: " + (_text_of(users[-1].get("content")) if users else "")
        words = _words(reply)
        while len(words) < faults.chunks:
            words.append(f"w{len(words)}")
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(words),
            "total_tokens": prompt + len(words),
        }
        ident, created, model = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time()), body["model"]
        if faults.fixed_id:
            ident, created = "chatcmpl-fixed", 0
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

            def events() -> Iterable[bytes]:
                base = {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                }
                yield _event(
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None,
                            }
                        ],
                    }
                )
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    yield _event(
                        {
                            **base,
                            "choices": [
                                {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                            ],
                        }
                    )
                if not faults.no_finish:
                    yield _event(
                        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    )
                if include_usage:
                    yield _event({**base, "choices": [], "usage": usage})

            return await self._stream(request, faults, events(), done=True)
        answer = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(words)},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        return self._json(200, orjson.dumps(answer))

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body, faults, early = await self._begin(request)
        if early is not None:
            return early
        prompt = body.get("prompt")
        prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
        words = _words("Echo: " + prompt_text)
        while len(words) < faults.chunks:
            words.append(f"w{len(words)}")
        usage = {
            "prompt_tokens": len(_words(prompt_text)),
            "completion_tokens": len(words),
            "total_tokens": len(_words(prompt_text)) + len(words),
        }
        ident, created, model = f"cmpl-{uuid.uuid4().hex[:12]}", int(time.time()), body["model"]
        if faults.fixed_id:
            ident, created = "cmpl-fixed", 0
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

            def events() -> Iterable[bytes]:
                base = {
                    "id": ident,
                    "object": "text_completion",
                    "created": created,
                    "model": model,
                }
                for word in words:
                    yield _event(
                        {
                            **base,
                            "choices": [
                                {
                                    "index": 0,
                                    "text": " " + word,
                                    "logprobs": None,
                                    "finish_reason": None,
                                }
                            ],
                        }
                    )
                if faults.no_finish:
                    return
                yield _event(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}
                        ],
                    }
                )
                if include_usage:
                    # As vLLM: a last chunk with no choices, only the usage.
                    yield _event({**base, "choices": [], "usage": usage})

            return await self._stream(request, faults, events(), done=True)
        answer = {
            "id": ident,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "text": " " + " ".join(words),
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        return self._json(200, orjson.dumps(answer))

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, _, early = await self._begin(request)
        if early is not None:
            return early
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else [str(i) for i in (inputs or [])]
        dimensions = int(body.get("dimensions") or 8)
        data = []
        for index, text in enumerate(texts):
            vector = _vector(text, dimensions)
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(_words(t)) for t in texts)
        answer = {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return self._json(200, orjson.dumps(answer))

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body, faults, early = await self._begin(request)
        if early is not None:
            return early
        given = body.get("input")
        text_in = (
            given
            if isinstance(given, str)
            else " ".join(
                _text_of(item.get("content")) for item in given or [] if isinstance(item, dict)
            )
        )
        words = _words("Echo: " + text_in)
        while len(words) < faults.chunks:
            words.append(f"w{len(words)}")
        text = " ".join(words)
        ident, item_id = f"resp_{uuid.uuid4().hex[:12]}", f"msg_{uuid.uuid4().hex[:12]}"
        usage = {
            "input_tokens": len(_words(text_in)),
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": len(words),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": len(_words(text_in)) + len(words),
        }

        def response(status: str, content: list[Any], with_usage: bool) -> dict[str, Any]:
            output = (
                [
                    {
                        "type": "message",
                        "id": item_id,
                        "status": status,
                        "role": "assistant",
                        "content": content,
                    }
                ]
                if content
                else []
            )
            return {
                "id": ident,
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "model": body["model"],
                "output": output,
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": usage if with_usage else None,
            }

        part = {"type": "output_text", "text": text, "annotations": []}
        if body.get("stream") is True:

            def events() -> Iterable[bytes]:
                seq = 0

                def ev(kind: str, **data: Any) -> bytes:
                    nonlocal seq
                    seq += 1
                    return _event({"type": kind, "sequence_number": seq, **data}, kind)

                yield ev("response.created", response=response("in_progress", [], False))
                yield ev("response.in_progress", response=response("in_progress", [], False))
                where = {"item_id": item_id, "output_index": 0, "content_index": 0}
                item = {"type": "message", "id": item_id, "role": "assistant"}
                yield ev(
                    "response.output_item.added",
                    output_index=0,
                    item={**item, "status": "in_progress", "content": []},
                )
                yield ev("response.content_part.added", **where, part={**part, "text": ""})
                for i, word in enumerate(words):
                    yield ev(
                        "response.output_text.delta",
                        **where,
                        delta=word if i == 0 else " " + word,
                        logprobs=[],
                    )
                yield ev("response.output_text.done", **where, text=text, logprobs=[])
                yield ev("response.content_part.done", **where, part=part)
                yield ev(
                    "response.output_item.done",
                    output_index=0,
                    item={**item, "status": "completed", "content": [part]},
                )
                if not (body.get("fake") or {}).get("no_completed"):
                    yield ev("response.completed", response=response("completed", [part], True))

            return await self._stream(request, faults, events(), done=False)
        return self._json(200, orjson.dumps(response("completed", [part], True)))

    async def _absent(self, request: web.Request) -> web.Response:
        """Recorded, then FastAPI's 404 for an unknown route, as llama-cpp-python answers."""
        self.requests.append(
            Recorded(request.method, request.path, dict(request.headers), await request.read())
        )
        return self._json(404, b'{"detail":"Not Found"}')

    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append(
            Recorded(
                request.method, request.path, {str(k): v for k, v in request.headers.items()}, b""
            )
        )
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return self._json(200, orjson.dumps({"object": "list", "data": data}))

    async def _tokenize(self, request: web.Request) -> web.Response:
        """The tokenizer routes of vLLM, llama.cpp and llama-cpp-python, by path and body."""
        raw = await request.read()
        self.requests.append(
            Recorded(
                request.method, request.path, {str(k): v for k, v in request.headers.items()}, raw
            )
        )
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._json(401, _error_body(401, "invalid API key"))
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return self._json(400, _error_body(400, "body is not JSON"))
        if isinstance(body.get("messages"), list):
            count = prompt_tokens(body["messages"])
        else:
            text = body.get("prompt", body.get("content", body.get("input")))
            if not isinstance(text, str):
                return self._json(400, _error_body(400, "nothing to tokenize"))
            count = len(_words(text))
        tokens = list(range(count))
        if request.path == "/extras/tokenize/count":
            return self._json(200, orjson.dumps({"count": count}))
        if request.path == "/extras/tokenize" or "content" in body:
            return self._json(200, orjson.dumps({"tokens": tokens}))
        return self._json(
            200, orjson.dumps({"count": count, "max_model_len": 8192, "tokens": tokens})
        )

    async def _status(self, request: web.Request) -> web.Response:
        self.requests.append(
            Recorded(
                request.method, request.path, {str(k): v for k, v in request.headers.items()}, b""
            )
        )
        if self.status_http_status != 200:
            return self._json(self.status_http_status, b'{"detail": "status page broken"}')
        return self._json(200, orjson.dumps(self.status_document))

    async def _recorded(self, request: web.Request) -> web.Response:
        rows = [
            {
                "method": r.method,
                "path": r.path,
                "headers": r.headers,
                "body": r.body.decode(errors="replace"),
            }
            for r in self.requests
        ]
        return self._json(200, orjson.dumps(rows))

    # --- running in a background thread (tests) ----------------------------------------------

    def start(self, port: int = 0) -> FakeBackend:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            # Handlers still sleeping in a fault (slow stream) must not hold the shutdown up.
            self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", port)
            loop.run_until_complete(site.start())
            self.port = int(self._runner.addresses[0][1])
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            # Handlers cut off by the shutdown timeout: cancel them rather than leak them.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-backend", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake backend did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    parser.add_argument("--model", action="append", help="model name for /v1/models (repeat)")
    parser.add_argument("--capacity", type=int, default=0, help="chat requests served at once")
    parser.add_argument("--service-seconds", type=float, default=0.0, help="each one's time")
    args = parser.parse_args()
    backend = FakeBackend(
        api_key=args.api_key,
        models=tuple(args.model or ["fake-model"]),
        capacity=args.capacity,
        service_seconds=args.service_seconds,
    )
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(backend.app(), host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
