"""The server's disconnect notice (inference_gateway/server.py, disconnect.py): a real uvicorn
server with the gateway's protocol, real sockets closed mid-answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from inference_gateway.server import HttpToolsProtocol
from resource_server_async.disconnect import ClientWatch, notice_of
from tests.edge.raw_asgi import App, lifespan, read_until, serving

REQUEST = b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}


@dataclass
class Seen:
    """What the application saw of each request, in order."""

    noticed: list[bool] = field(default_factory=list)
    receives: int = 0
    gone: list[int] = field(default_factory=list)  # the requests told their client left
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    client_closed: asyncio.Event = field(default_factory=asyncio.Event)


def streaming_app(seen: Seen, *, watch_late: bool = False) -> App:
    """The first request on a connection is answered whole; later ones stream until cancelled.
    `watch_late`: the stream starts watching only once the test has closed its socket."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        index = len(seen.noticed)
        seen.noticed.append(notice_of(scope) is not None)

        async def counted_receive() -> Any:
            seen.receives += 1
            return await receive()

        task = asyncio.current_task()
        assert task is not None
        if index == 0 and not watch_late:
            client = ClientWatch(scope, counted_receive, task, lambda: seen.gone.append(index))
            await send(START)
            await send({"type": "http.response.body", "body": b"whole", "more_body": False})
            client.stop()
            return
        await send(START)
        await send({"type": "http.response.body", "body": b"chunk", "more_body": True})
        if watch_late:
            await seen.client_closed.wait()
            await asyncio.sleep(0.2)  # the server has seen the connection go
        client = ClientWatch(scope, counted_receive, task, lambda: seen.gone.append(index))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.cancelled.set()
            raise
        finally:
            client.stop()

    return app


async def one_stream_then_hang_up(port: int, seen: Seen, *, after_whole: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if after_whole:
        writer.write(REQUEST)
        await read_until(reader, b"whole")
    writer.write(REQUEST)
    await read_until(reader, b"chunk")
    writer.close()
    await writer.wait_closed()
    seen.client_closed.set()


async def hung_up_mid_stream(http: Any, *, watch_late: bool = False) -> Seen:
    """What the application saw of a connection that ended mid-stream: with `watch_late`, its
    only request; otherwise a whole answer, then the stream."""
    seen = Seen()
    async with serving(streaming_app(seen, watch_late=watch_late), http) as port:
        await one_stream_then_hang_up(port, seen, after_whole=not watch_late)
        await asyncio.wait_for(seen.cancelled.wait(), 2)
    return seen


async def test_a_client_that_hangs_up_mid_stream_is_noticed_without_receive() -> None:
    seen = await hung_up_mid_stream(HttpToolsProtocol)

    assert seen.noticed == [True, True]
    # The answered request is not told of the later hang-up; the stream is, and nothing
    # awaited receive() to learn it.
    assert seen.gone == [1]
    assert seen.receives == 0


async def test_watching_after_the_client_left_cancels_at_once() -> None:
    seen = await hung_up_mid_stream(HttpToolsProtocol, watch_late=True)

    assert seen.gone == [0]
    assert seen.receives == 0


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_under_uvicorns_own_protocols_a_task_on_receive_notices(http: str) -> None:
    seen = await hung_up_mid_stream(http)

    assert seen.noticed == [False, False]
    assert seen.gone == [1]
    assert seen.receives >= 1


async def test_a_request_begun_behind_an_open_stream_leaves_it_its_notice() -> None:
    # The next request's first bytes arrive (a message begins) while the first still streams;
    # its headers do not end, so the server keeps reading (a whole pipelined request would
    # pause reading until the stream ends, under uvicorn's own protocol too).
    seen = Seen()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        index = len(seen.noticed)
        seen.noticed.append(notice_of(scope) is not None)
        task = asyncio.current_task()
        assert task is not None
        client = ClientWatch(scope, receive, task, lambda: seen.gone.append(index))
        await send(START)
        await send({"type": "http.response.body", "body": b"chunk", "more_body": True})
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.cancelled.set()
            raise
        finally:
            client.stop()

    async with serving(app, HttpToolsProtocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(REQUEST)
        await read_until(reader, b"chunk")
        writer.write(b"GET /next HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await asyncio.sleep(0.2)
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(seen.cancelled.wait(), 2)

    assert seen.gone == [0]
