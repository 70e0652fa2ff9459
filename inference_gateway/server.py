"""uvicorn's httptools HTTP protocol with a bound on the request line and headers (431 beyond),
a client's disconnect told to the application at once, and less held per open connection.

httptools keeps the request line and headers in memory until they end, without a limit: four
connections sending 50 MB of headers took a worker from 86 to 338 MB. Serve with

    python -m inference_gateway.serve inference_gateway.asgi:application \
        --http inference_gateway.server:HttpToolsProtocol

(uvicorn imports a `module:Class` value of --http as the protocol class). The bound is the
setting MAX_REQUEST_HEADER_BYTES; the reverse proxy should cap headers too (docs/deploy.md).

The disconnect: `scope["extensions"]["gateway.disconnect"]["notice"]` is the protocol itself, a
`DisconnectNotice` (resource_server_async/disconnect.py), so that a stream learns of its client's
departure from `connection_lost` rather than from a task per stream parked on `receive()`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
from django.conf import settings
from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl
from uvicorn.server import ServerState

from inference_gateway import direct_answers
from resource_server_async import chunk_writer
from resource_server_async.disconnect import EXTENSION

_REFUSAL = orjson.dumps(
    {
        "error": {
            "message": "The request line and headers are larger than this gateway accepts.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_headers_too_large",
        }
    }
)


# The phase of the request being read, in `_header_bytes` beside the count (>= 0: headers
# not ended yet, that many bytes so far): one attribute, not five. uvicorn's protocol sets 28
# attributes (`url` with the first request); CPython 3.11 shares an instance's attribute keys
# (and keeps its values inline) only up to 29, beyond which each connection carries a dict of
# its own: measured, 1.3 kB more per open connection (4.5 kB instead of 3.2).
_IN_BODY = -1  # the headers ended; the body is not counted
_ENDED_IN_READ = -2  # a request ended inside this read: the rest was its body, not headers
_REFUSED = -3  # answered 431; nothing more is read


class _Pipeline(list[Any]):
    """uvicorn's queue of pipelined requests (it calls appendleft, pop and bool), as a list:
    an empty deque holds a 64-slot block, 0.7 kB per connection, and clients rarely pipeline."""

    __slots__ = ()

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


_NO_WAITERS: Any = ()  # iterated by set() and tested by __repr__ like an empty deque


class _Event(asyncio.Event):
    """asyncio.Event with its waiters' deque made by the first wait() that blocks. uvicorn makes
    two per connection (each request's message event, the flow control's "writable" event),
    which only a request body still arriving or a client slower than its answer waits on; each
    deque is 0.7 kB held for an open stream's life otherwise (bench/compute_streams.py)."""

    def __init__(self, value: bool = False) -> None:
        self._waiters = _NO_WAITERS
        self._value = value

    async def wait(self) -> Literal[True]:
        if not self._value and self._waiters is _NO_WAITERS:
            self._waiters = deque()
        return await super().wait()


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """Counts the bytes of each request's line and headers; past the limit, answers 431 and
    closes the connection without reading (or keeping) the rest.

    Two checks, both cheap: while the headers have not ended, every byte received counts (so
    memory stays within the limit plus one read); when they end, their exact size is summed
    (a few additions per request), which catches headers that arrived in one read.

    Also the application's `DisconnectNotice` (`watch`, `unwatch`): the callback watched is
    called from `connection_lost` while the current answer is incomplete.
    """

    # Slots, not attributes: beyond uvicorn's 28 and `_header_bytes`, each connection would
    # carry an attribute dict of its own (see `_IN_BODY`).
    __slots__ = ("_answering", "_extensions", "_on_disconnect")

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_bytes = 0
        self.pipeline = _Pipeline()  # type: ignore[assignment]
        self._on_disconnect: Callable[[], object] | None = None
        # One per connection, shared by its requests' scopes (nothing writes to it); one inner
        # dict for both extensions (each dict is 0.2 kB of every open stream).
        offered: dict[object, object] = {"notice": self, "chunk_writers": self}
        self._extensions = {EXTENSION: offered, chunk_writer.EXTENSION: offered}
        self._answering: httptools_impl.RequestResponseCycle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow._is_writable_event = _Event(value=True)

    def connection_lost(self, exc: Exception | None) -> None:
        gone = self.cycle is not None and not self.cycle.response_complete
        super().connection_lost(exc)
        callback, self._on_disconnect = self._on_disconnect, None
        if gone and callback is not None:
            # In this turn of the loop, but after what its reads woke already: an answer whose
            # model server ended in the same turn ends whole (its record says so), as when a
            # task parked on receive() learned of the disconnect.
            self.loop.call_soon(callback)

    def watch(self, callback: Callable[[], object]) -> None:
        if self.cycle is not None and self.cycle.disconnected:
            callback()  # gone already: as receive() would have said at once
            return
        self._on_disconnect = callback

    def unwatch(self, callback: Callable[[], object]) -> None:
        if self._on_disconnect == callback:
            self._on_disconnect = None

    def _start_asgi_task(self, cycle: httptools_impl.RequestResponseCycle, app: Any) -> None:
        # The cycle whose application runs (chunk_writer below): a request pipelined behind it
        # becomes `self.cycle` before its own application starts, at the end of this one's answer.
        self._answering = cycle
        # The side channel's POSTs are answered without the application around them
        # (direct_answers.py); everything else, and a request refused by uvicorn's
        # concurrency limit (another `app`), goes the usual way.
        scope = cycle.scope
        direct = (
            direct_answers.side_channel()
            if scope["method"] == "POST" and app is self.app
            else None  # the usual request: not even the lookup
        )
        if direct is not None and scope["path"] in direct[1]:
            task = self.loop.create_task(direct_answers.answer(direct[0], cycle, self.logger))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)
            return
        super()._start_asgi_task(cycle, app)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.cycle is None or self.cycle.response_complete:
            # A new request after the last answer: what watched that one is done. A request
            # pipelined behind an answer still going leaves that answer its watch.
            self._on_disconnect = None
        self.scope["extensions"] = self._extensions

    # --- Body chunks written here (resource_server_async/chunk_writer.py) -------------------

    def chunk_writer(self, scope: Any) -> chunk_writer.WriteChunk | None:
        cycle = self._answering
        if (
            cycle is None
            or cycle.scope is not scope
            or not cycle.response_started
            or cycle.response_complete
            or not cycle.chunked_encoding
            or scope["method"] == "HEAD"
        ):
            return None
        return _ChunkWriter(cycle)

    # --- end of the body chunks' part ------------------------------------------------------

    @property
    def max_header_bytes(self) -> int:
        # A class-level read of the setting (Django caches it), not a 29th attribute.
        limit: int = settings.MAX_REQUEST_HEADER_BYTES
        return limit

    def data_received(self, data: bytes) -> None:
        if self._header_bytes == _REFUSED:
            return
        if self._header_bytes == _ENDED_IN_READ:
            self._header_bytes = 0  # the next request's headers, from this read on
        super().data_received(data)
        if self._header_bytes >= 0:
            # The whole read belonged to headers that have not ended yet.
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._header_bytes = _REFUSED
        if self._header_bytes == _REFUSED:
            self._send_431()

    def on_headers_complete(self) -> None:
        if self._header_bytes == _REFUSED:
            return
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if size > self.max_header_bytes:
            # No application call; data_received answers once the parser returns.
            self._header_bytes = _REFUSED
            return
        self._header_bytes = _IN_BODY
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:  # a new request (not an upgrade): nothing waits yet
            self.cycle.message_event = _Event()

    def on_body(self, body: bytes) -> None:
        if self._header_bytes != _REFUSED:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._header_bytes == _REFUSED:
            return
        super().on_message_complete()
        self._header_bytes = _ENDED_IN_READ

    def _send_431(self) -> None:
        self.logger.info("Request headers larger than %d bytes refused.", self.max_header_bytes)
        content = [httptools_impl.STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(_REFUSAL)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                _REFUSAL,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


class _ChunkWriter:
    """One answer's body chunks (more to follow) written as its cycle's `send` writes them:
    chunked framing, a wait while the transport is paused for writing, nothing once the client
    is gone. The last message still goes through `send` (it completes the cycle)."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: httptools_impl.RequestResponseCycle) -> None:
        self._cycle = cycle

    def __call__(self, body: bytes) -> Awaitable[None] | None:
        cycle = self._cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            return self._write_when_writable(body)
        if body and not cycle.disconnected:
            cycle.transport.write(b"%x\r\n%b\r\n" % (len(body), body))
        return None

    async def _write_when_writable(self, body: bytes) -> None:
        await self._cycle.flow.drain()
        if body and not self._cycle.disconnected:
            self._cycle.transport.write(b"%x\r\n%b\r\n" % (len(body), body))
