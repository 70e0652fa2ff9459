"""The events the gateway's protocol makes lazily (inference_gateway/server.py) still wake what
waits on them: a request body that arrives in pieces, a client that reads slower than its answer
comes. A real uvicorn server with the gateway's protocol, real sockets."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from inference_gateway.server import HttpToolsProtocol
from tests.edge.raw_asgi import lifespan, read_until, serving

ANSWER_BYTES = 16 * 1024 * 1024  # far beyond the socket buffers: the server must pause writing


async def echo_digest_or_flood(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST: the SHA-256 of the body as it came; GET: ANSWER_BYTES in 64 kB sends."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["method"] == "POST":
        digest = hashlib.sha256()
        while True:
            message = await receive()
            digest.update(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": digest.hexdigest().encode()})
        return
    piece = b"x" * 65536
    for _ in range(ANSWER_BYTES // len(piece)):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def test_a_body_sent_in_pieces_is_read_whole() -> None:
    parts = [b"a" * 1000, b"b" * 2000, b"c" * 3000]
    body = b"".join(parts)
    async with serving(echo_digest_or_flood, HttpToolsProtocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.1)  # the application waits for the next piece meanwhile
        answer = await read_until(reader, hashlib.sha256(body).hexdigest().encode())
        writer.close()

    assert answer.startswith(b"HTTP/1.1 200")


async def test_a_slow_reader_gets_the_whole_answer() -> None:
    async with serving(echo_digest_or_flood, HttpToolsProtocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await asyncio.sleep(0.5)  # not reading: the server's writes pause until we do
        received = 0
        head = b""
        while chunk := await asyncio.wait_for(reader.read(1 << 20), 10):
            if not head:
                head, _, chunk = chunk.partition(b"\r\n\r\n")
            received += chunk.count(b"x")
        writer.close()

    assert head.startswith(b"HTTP/1.1 200")
    assert received == ANSWER_BYTES


async def test_pipelined_requests_are_answered_in_order() -> None:
    bodies = [b"first", b"second", b"third"]
    requests = b"".join(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
        for body in bodies
    )
    async with serving(echo_digest_or_flood, HttpToolsProtocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(requests)  # all three before any answer: uvicorn queues the later ones
        last = hashlib.sha256(bodies[-1]).hexdigest().encode()
        answers = await read_until(reader, last)
        writer.close()

    digests = [hashlib.sha256(body).hexdigest().encode() for body in bodies]
    positions = [answers.find(digest) for digest in digests]
    assert -1 not in positions
    assert positions == sorted(positions)
