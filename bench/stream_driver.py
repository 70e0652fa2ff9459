"""The open-streams bench's client: thousands of SSE streams held open, their events only counted.

An aiohttp client (a response, a stream reader and a line iterator per stream) costs more
CPU per chunk than the gateway that relays it; this one is a raw asyncio protocol per
connection that sends one pre-encoded request and counts `data:` in what arrives.
"""

from __future__ import annotations

import asyncio
from typing import cast


class Tally:
    """What all the streams have seen so far."""

    __slots__ = ("events", "failed", "opened", "refusal")

    def __init__(self) -> None:
        self.opened = 0  # answered with a 200 head
        self.events = 0  # `data:` events received
        self.failed = 0  # answered with another status, or closed before their head
        self.refusal = ""  # the status line of the first other answer


class StreamClient(asyncio.Protocol):
    """One stream: its request on connect; on its head, `opened` is set."""

    __slots__ = ("_head", "_request", "_tail", "_tally", "opened", "transport")

    def __init__(self, request: bytes, tally: Tally) -> None:
        self._request = request
        self._tally = tally
        self._head = True
        self._tail = b""
        self.opened = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._head:
            self._head = False
            ok = data.startswith(b"HTTP/1.1 200")
            if ok:
                self._tally.opened += 1
            else:
                self._tally.failed += 1
                self._tally.refusal = self._tally.refusal or data.split(b"\r\n", 1)[0].decode()
            if not self.opened.done():
                self.opened.set_result(ok)
        # The last 4 bytes are kept: `data:` split between two reads is counted once.
        scanned = self._tail + data
        self._tally.events += scanned.count(b"data:")
        self._tail = scanned[-4:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self._tally.failed += 1
            self.opened.set_result(False)


def post_request(port: int, path: str, auth: str, body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 POST of a JSON body to the gateway on loopback."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def open_streams(
    port: int, request: bytes, count: int, tally: Tally, at_once: int, seconds: float = 600.0
) -> list[StreamClient]:
    """`count` streams, at most `at_once` waiting for their head (the gateway's accept
    backlog is finite: a burst of 10,000 connects would be retried after a second); none
    started after `seconds` (a machine shared with other loads opens fewer, not for ever)."""
    loop = asyncio.get_running_loop()
    room = asyncio.Semaphore(at_once)
    clients: list[StreamClient] = []
    deadline = loop.time() + seconds

    async def one() -> None:
        async with room:
            if loop.time() > deadline:
                return
            try:
                _, client = await loop.create_connection(
                    lambda: StreamClient(request, tally), "127.0.0.1", port
                )
            except OSError:
                tally.failed += 1
                return
            clients.append(client)
            await client.opened

    await asyncio.gather(*(one() for _ in range(count)))
    return clients


def close_all(clients: list[StreamClient]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.close()
