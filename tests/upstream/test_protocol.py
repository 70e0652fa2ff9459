"""The upstream connections' protocol (upstream/protocol.py): no parse of nothing after reads
that were never paused, and flow control as aiohttp's own against a real socket: a server that
writes faster than the gateway reads is paused and resumed, and every byte arrives in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from resource_server_async.upstream.clients import UpstreamClients
from resource_server_async.upstream.protocol import UpstreamResponseHandler

EVENTS = 16000  # ~2 MB: several times aiohttp's high-water mark (512 kB in 3.14)


def event(number: int) -> bytes:
    return b'data: {"n": %d, "pad": "%s"}\n\n' % (number, b"x" * 100)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A chunked SSE answer to one POST, as fast as the socket takes it."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for number in range(EVENTS):
        body = event(number)
        writer.write(b"%x\r\n%s\r\n" % (len(body), body))
        if number % 50 == 0:
            await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def fast_server() -> AsyncIterator[str]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def clients() -> AsyncIterator[UpstreamClients]:
    upstream = UpstreamClients()
    yield upstream
    await upstream.close()


async def test_a_slow_reader_pauses_the_server_and_gets_every_byte_in_order(
    clients: UpstreamClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[int] = []
    resumes: list[int] = []
    pause, resume = UpstreamResponseHandler.pause_reading, UpstreamResponseHandler.resume_reading

    def counted_pause(self: UpstreamResponseHandler) -> None:
        pauses.append(1)
        pause(self)

    def counted_resume(self: UpstreamResponseHandler, resume_parser: bool = True) -> None:
        if self._reading_paused:
            resumes.append(1)
        resume(self, resume_parser)

    monkeypatch.setattr(UpstreamResponseHandler, "pause_reading", counted_pause)
    monkeypatch.setattr(UpstreamResponseHandler, "resume_reading", counted_resume)
    async with fast_server() as origin:
        session = clients.session(origin)
        async with session.post(f"{origin}/v1/chat/completions", data=b"{}") as response:
            assert response.connection is not None
            assert isinstance(response.connection.protocol, UpstreamResponseHandler)
            await asyncio.sleep(0.3)  # the server fills the socket and the reader's buffer
            received = bytearray()
            async with asyncio.timeout(10):  # a pause never resumed fails, not hangs
                while chunk := await response.content.readany():
                    received += chunk
                    await asyncio.sleep(0)
    assert bytes(received) == b"".join(event(number) for number in range(EVENTS))
    assert pauses, "the reader's buffer never went over its high-water mark"
    assert len(resumes) >= len(pauses) - 1


async def test_reads_that_were_never_paused_do_not_parse_again(
    clients: UpstreamClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_feeds: list[int] = []
    fed = UpstreamResponseHandler.data_received

    def counted(self: UpstreamResponseHandler, data: bytes) -> None:
        if not data:
            empty_feeds.append(1)
        fed(self, data)

    monkeypatch.setattr(UpstreamResponseHandler, "data_received", counted)
    async with fast_server() as origin:
        session = clients.session(origin)
        async with session.post(f"{origin}/v1/chat/completions", data=b"{}") as response:
            received = bytearray()
            # Read as it comes: the buffer stays under its low-water mark, reading is never
            # paused, and aiohttp's resume after each read would have fed the parser b"".
            while chunk := await response.content.readany():
                received += chunk
    assert bytes(received) == b"".join(event(number) for number in range(EVENTS))
    assert empty_feeds == []
