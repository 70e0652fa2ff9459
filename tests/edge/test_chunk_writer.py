"""Body chunks written by the gateway's protocol (inference_gateway/server.py, chunk_writer.py):
the framing uvicorn's send writes, its wait on a client that does not read, nothing once the
client is gone, and ASGI send wherever the protocol cannot write them. A real uvicorn server
over real sockets."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

import pytest

from inference_gateway.server import HttpToolsProtocol
from resource_server_async.chunk_writer import WriteChunk, chunk_writer, hide
from tests.edge.raw_asgi import App, lifespan, read_until, serving

REQUEST = b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
START = {"type": "http.response.start", "status": 200, "headers": []}
END = {"type": "http.response.body", "body": b"", "more_body": False}


@dataclass
class Seen:
    """Whether each request had a writer before its start, and after it."""

    before: list[bool] = field(default_factory=list)
    after: list[bool] = field(default_factory=list)


def writing_app(seen: Seen, chunks: list[bytes], *, hidden: bool = False) -> App:
    """Writes `chunks` with the protocol's writer when there is one, else through send."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if hidden:
            hide(scope)
        seen.before.append(chunk_writer(scope) is not None)
        await send(START)
        write = chunk_writer(scope)
        seen.after.append(write is not None)
        for chunk in chunks:
            if write is None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            elif (waiting := write(chunk)) is not None:
                await waiting
        await send(END)

    return app


def body_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1]


async def one_answer(app: App, http: Any) -> bytes:
    async with serving(app, http) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        answer = await read_until(reader, b"0\r\n\r\n")
        writer.close()
        await writer.wait_closed()
    return answer


async def test_chunks_are_framed_as_send_frames_them() -> None:
    seen = Seen()
    chunks = [b"data: a\n\n", b"", b"data: " + b"x" * 300 + b"\n\n"]

    written = await one_answer(writing_app(seen, chunks), HttpToolsProtocol)
    sent = await one_answer(writing_app(Seen(), chunks, hidden=True), HttpToolsProtocol)

    # No writer before the answer's start: the start must go through every layer's send.
    assert seen.before == [False] and seen.after == [True]
    long_event = b"data: " + b"x" * 300 + b"\n\n"  # 0x134 bytes
    assert body_of(written) == b"9\r\ndata: a\n\n\r\n134\r\n" + long_event + b"\r\n0\r\n\r\n"
    assert body_of(written) == body_of(sent)
    assert b"transfer-encoding: chunked" in written


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_under_uvicorns_own_protocols_chunks_go_through_send(http: str) -> None:
    seen = Seen()

    answer = await one_answer(writing_app(seen, [b"one", b"two"]), http)

    assert seen.after == [False]
    assert body_of(answer) == b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"


async def test_a_hidden_writer_leaves_the_connections_next_request_its_own() -> None:
    seen = Seen()
    hidden_first = True

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal hidden_first
        if scope["type"] != "lifespan" and hidden_first:
            hidden_first = False
            hide(scope)
        await writing_app(seen, [b"c"])(scope, receive, send)

    async with serving(app, HttpToolsProtocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):
            writer.write(REQUEST)
            await read_until(reader, b"0\r\n\r\n")
        writer.close()
        await writer.wait_closed()

    assert seen.after == [False, True]


async def test_a_request_pipelined_behind_a_stream_does_not_take_its_writer() -> None:
    # The second request arrives whole while the first still streams: it becomes the
    # protocol's current cycle, and the stream keeps writing its own chunks.
    release = asyncio.Event()
    writers: list[WriteChunk | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        await send(START)
        write = chunk_writer(scope)
        writers.append(write)
        assert write is not None
        write(b"first" if len(writers) == 1 else b"second")
        if len(writers) == 1:
            await release.wait()
            write(b"-more")
        await send(END)

    async with serving(app, HttpToolsProtocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        answers = await read_until(reader, b"first")
        writer.write(REQUEST)
        await asyncio.sleep(0.2)  # the server has read the pipelined request
        release.set()
        answers += await read_until(reader, b"second\r\n0\r\n\r\n")
        writer.close()
        await writer.wait_closed()

    first, second = answers.split(b"HTTP/1.1 200", 2)[1:]
    assert body_of(first) == b"5\r\nfirst\r\n5\r\n-more\r\n0\r\n\r\n"
    assert body_of(second) == b"6\r\nsecond\r\n0\r\n\r\n"
    assert len(writers) == 2  # each had a writer of its own


async def test_a_client_that_does_not_read_makes_the_writer_wait() -> None:
    chunk = b"y" * 65536
    total = 256 * len(chunk)  # far more than the socket buffers (loopback: a few MB) hold
    waiting_now = asyncio.Event()
    waits = 0
    ended = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal waits
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        await send(START)
        write = chunk_writer(scope)
        assert write is not None
        for _ in range(total // len(chunk)):
            if (waiting := write(chunk)) is not None:
                waits += 1
                waiting_now.set()
                await waiting
        await send(END)
        ended.set()

    loop = asyncio.get_running_loop()
    async with serving(app, HttpToolsProtocol) as port:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        await loop.sock_connect(client, ("127.0.0.1", port))
        await loop.sock_sendall(client, REQUEST)
        await asyncio.wait_for(waiting_now.wait(), 10)
        await asyncio.sleep(0.3)
        assert not ended.is_set()  # nothing read: the answer waits, it is not held whole
        parts: list[bytes] = []
        tail = b""
        while not tail.endswith(b"0\r\n\r\n"):
            more = await asyncio.wait_for(loop.sock_recv(client, 1 << 20), 10)
            assert more
            parts.append(more)
            tail = (tail + more)[-8:]
        client.close()
        received = b"".join(parts)

    assert waits >= 1 and ended.is_set()
    assert body_of(received) == (b"10000\r\n" + chunk + b"\r\n") * 256 + b"0\r\n\r\n"


async def test_after_the_client_left_chunks_are_dropped() -> None:
    gone = asyncio.Event()
    wrote_after = asyncio.Event()
    outcome: list[object] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        await send(START)
        write = chunk_writer(scope)
        assert write is not None
        write(b"before")
        await gone.wait()
        await asyncio.sleep(0.2)  # the server has seen the connection go
        outcome.append(write(b"after"))  # as uvicorn's send: nothing written, nothing raised
        wrote_after.set()
        await send(END)

    async with serving(app, HttpToolsProtocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        await read_until(reader, b"before")
        writer.close()
        await writer.wait_closed()
        gone.set()
        await asyncio.wait_for(wrote_after.wait(), 5)

    assert outcome == [None]
