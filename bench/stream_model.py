"""A cheap model stand-in for the open-streams bench: thousands of SSE streams from one core.

tests/fake_backend.py (aiohttp, one coroutine and one sleep per stream) saturates a core at
about 2,500 chunks/s. This server speaks just enough HTTP/1.1 on a raw asyncio protocol
(uvloop): a POST with `"stream": true` gets the SSE headers and a first event, then joins a
timer wheel that, once per tick, writes one pre-encoded chunk to every stream due in that
tick; the stream runs until the client closes it. A POST without it gets a small
chat.completion; `GET /v1/models` lists the model; `GET /stats` counts the tokens written and
those skipped for a reader that fell behind. The token interval is per request,
`{"fake": {"chunk_delay": seconds}}`, as the fake backend reads it.

    python -m bench.stream_model --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
from typing import cast

import orjson
import uvloop

MODEL = "bench-model"
TICK = 0.01  # the wheel's resolution: a stream's interval is rounded to whole ticks
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
# A stream whose reader lags this far behind is skipped at its turn (its token is dropped
# and counted) rather than buffered here without bound.
_MAX_UNSENT = 64 * 1024


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _event(delta: dict[str, str]) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(_event({"role": "assistant"}))
)
TOKEN = _chunked(_event({"content": " tok"}))


def _json_answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (
        len(body),
        body,
    )


_COMPLETION = _json_answer(
    orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hello"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )
)
_MODELS = _json_answer(orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}))
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class Wheel:
    """Streams of one interval in `slots` sets; each tick writes TOKEN to one set's streams."""

    def __init__(self, interval: float, loop: asyncio.AbstractEventLoop) -> None:
        self.slots: list[set[asyncio.Transport]] = [
            set() for _ in range(max(1, round(interval / TICK)))
        ]
        self._loop = loop
        self._cursor = 0
        self._joined = 0
        self.sent = 0
        self.skipped = 0
        self._due = loop.time() + TICK
        loop.call_at(self._due, self._tick)

    def join(self, transport: asyncio.Transport) -> set[asyncio.Transport]:
        # Round-robin over the slots, so that streams opened together are spread in time.
        slot = self.slots[self._joined % len(self.slots)]
        self._joined += 1
        slot.add(transport)
        return slot

    def _tick(self) -> None:
        # A copy: a failed write may end a connection, which leaves its slot.
        for transport in tuple(self.slots[self._cursor]):
            if transport.get_write_buffer_size() > _MAX_UNSENT:
                self.skipped += 1
            else:
                transport.write(TOKEN)
                self.sent += 1
        self._cursor = (self._cursor + 1) % len(self.slots)
        # On a fixed grid, not "now + TICK": a late tick does not slow every stream down.
        self._due += TICK
        self._loop.call_at(self._due, self._tick)


class ModelServer:
    """The wheels, one per token interval asked for."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.wheels: dict[float, Wheel] = {}

    def wheel(self, interval: float) -> Wheel:
        found = self.wheels.get(interval)
        if found is None:
            found = self.wheels[interval] = Wheel(interval, self.loop)
        return found

    def stats(self) -> dict[str, int]:
        """Tokens written and tokens skipped (a reader too slow), over all wheels."""
        wheels = self.wheels.values()
        return {"sent": sum(w.sent for w in wheels), "skipped": sum(w.skipped for w in wheels)}


class ModelConnection(asyncio.Protocol):
    """One client connection: requests answered in order; a stream ends it."""

    __slots__ = ("_buffer", "_server", "_slot", "_transport")

    def __init__(self, server: ModelServer) -> None:
        self._server = server
        self._buffer = b""
        self._slot: set[asyncio.Transport] | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._slot is not None and self._transport is not None:
            self._slot.discard(self._transport)
        self._slot = None

    def data_received(self, data: bytes) -> None:
        if self._slot is not None:
            return  # a streaming connection reads nothing more
        self._buffer += data
        while self._slot is None:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self._buffer[:head_end]
            match = _LENGTH.search(head)
            end = head_end + 4 + (int(match.group(1)) if match else 0)
            if len(self._buffer) < end:
                return
            body, self._buffer = self._buffer[head_end + 4 : end], self._buffer[end:]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if head.startswith(b"GET /v1/models"):
            transport.write(_MODELS)
            return
        if head.startswith(b"GET /stats"):
            transport.write(_json_answer(orjson.dumps(self._server.stats())))
            return
        if not head.startswith(b"POST /v1/chat/completions"):
            transport.write(_NOT_FOUND)
            return
        request = orjson.loads(body)
        if not request.get("stream"):
            transport.write(_COMPLETION)
            return
        interval = float((request.get("fake") or {}).get("chunk_delay") or 0.1)
        transport.write(_STREAM_HEAD)
        self._slot = self._server.wheel(interval).join(transport)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = ModelServer(loop)
    listener = await loop.create_server(
        lambda: ModelConnection(server), "127.0.0.1", port, backlog=4096
    )
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
