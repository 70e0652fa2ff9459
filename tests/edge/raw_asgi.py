"""Raw ASGI applications served by a real uvicorn in the test's loop, for the tests of the
gateway's HTTP protocol (inference_gateway/server.py) over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn

from tests.servers import free_port

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def lifespan(receive: Any, send: Any) -> None:
    """Answer the server's start-up and shutdown, for an application without either."""
    while (message := await receive())["type"] != "lifespan.shutdown":
        await send({"type": message["type"] + ".complete"})
    await send({"type": "lifespan.shutdown.complete"})


@contextlib.asynccontextmanager
async def serving(app: App, http: Any) -> AsyncIterator[int]:
    """`app` served on a free port with `http` (a protocol class, or uvicorn's name of one)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=http, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        more = await asyncio.wait_for(reader.read(4096), 5)
        assert more, f"the connection closed before {marker!r}"
        data += more
    return data
