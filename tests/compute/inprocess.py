"""The gateway's ASGI API served by uvicorn inside the test's own event loop and process.

For tests that change a fake's state from the test while the gateway runs (the fake Compute
service's endpoints and faults), or look at the process's stream hub. Everything else about the
server is real: routes, lifespan, sockets on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn

from tests.servers import free_port

GATEWAY_PROTOCOL = "inference_gateway.server:HttpToolsProtocol"


@contextlib.asynccontextmanager
async def serve_api(
    port: int = 0, http: str = GATEWAY_PROTOCOL, wrap: Callable[[Any], Any] | None = None
) -> AsyncIterator[str]:
    """`http`: uvicorn's --http, the gateway's own protocol unless told ("httptools": the
    plain uvicorn protocol, as under another server); `wrap`: around the application."""
    from resource_server_async.api.app import build_app

    port = port or free_port()
    app = build_app()
    config = uvicorn.Config(
        wrap(app) if wrap else app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        http=http,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        server.should_exit = True
        await task
        raise RuntimeError("the in-process API did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
