"""Requests the gateway's protocol (server.py) answers without the ASGI application around them:
the side channel's POSTs, one per streamed chunk of every Globus Compute stream.

Through the whole application such a POST passed uvicorn's proxy-headers middleware, the
gateway's dispatch, Starlette's application and error middleware and the side-channel
middleware before reaching the side channel, and its answer went through uvicorn's general
`send` (a regex check per header, per message). Here the protocol calls the side channel as
build_app wrapped it (the edge's host check and headers included, so nothing a caller sees
changes) with uvicorn's own `receive` (flow control, 100-continue, the disconnect) and a `send`
that writes the small, whole answer in one write: callgrind counted about two thirds of the
instructions per relayed chunk in those layers (bench/relay_callgrind.py).

Only what the side channel itself sends passes here (its own header names and values), which is
why the per-header checks of uvicorn's `send` are not repeated.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

_SERVER_ERROR = (
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\nconnection: close\r\n\r\n"
    b"Internal Server Error"
)


_views: Any = None  # resource_server_async.api.views.streaming, once imported


def side_channel() -> tuple[ASGIApp, Container[str]] | None:
    """The side channel and its paths, once the gateway's application is built (else None:
    the protocol serves another application, whose requests all go the usual way). Imported
    at the first request: Django is set up by then."""
    global _views
    if _views is None:
        from resource_server_async.api.views import streaming

        _views = streaming
    app = _views.served_directly
    return None if app is None else (app, _views.KINDS)


class WholeAnswer:
    """The `send` of one direct answer: the start kept, then written with its one body."""

    __slots__ = ("cycle", "head", "status")

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self.cycle = cycle
        self.status = 0
        self.head: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        cycle = self.cycle
        if message["type"] == "http.response.start":
            self.status = message["status"]
            head = [STATUS_LINE[self.status]]
            for name, value in (*cycle.default_headers, *message.get("headers", ())):
                head += (name, b": ", value, b"\r\n")
            if not cycle.keep_alive:
                head.append(b"connection: close\r\n")
            head.append(b"\r\n")
            self.head = head
            return
        if message.get("more_body", False):
            raise RuntimeError("a direct answer is sent whole, in one body message")
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
        if not cycle.disconnected:
            self.head.append(message.get("body", b""))
            cycle.transport.write(b"".join(self.head))
        self.log()
        finish(cycle)

    def log(self) -> None:
        cycle = self.cycle
        if cycle.access_log:  # uvicorn's access line, as its own send writes it
            scope: Any = cycle.scope
            cycle.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                scope["method"],
                get_path_with_query_string(scope),
                scope["http_version"],
                self.status,
            )


def finish(cycle: RequestResponseCycle) -> None:
    """The answer is complete: what uvicorn's send does at the end of a body."""
    cycle.response_started = cycle.response_complete = True
    cycle.waiting_for_100_continue = False  # answered without reading the body: no 100 now
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()


async def answer(app: ASGIApp, cycle: RequestResponseCycle, logger: logging.Logger) -> None:
    """Run `app` for the cycle's request with a WholeAnswer; a failure is logged and answered
    500 as uvicorn's run_asgi does."""
    send = WholeAnswer(cycle)
    try:
        await app(cycle.scope, cycle.receive, send)  # type: ignore[arg-type]
    except BaseException as exc:
        if isinstance(exc, Exception):
            logger.error("Exception in ASGI application\n", exc_info=exc)
        if send.head or cycle.response_complete or cycle.disconnected:
            cycle.transport.close()
        else:
            cycle.keep_alive = False
            cycle.transport.write(STATUS_LINE[500] + _SERVER_ERROR)
            send.status = 500
            send.log()
            finish(cycle)
        if not isinstance(exc, Exception):
            raise
    else:
        if not cycle.response_complete and not cycle.disconnected:
            logger.error("The side channel returned without a whole answer.")
            cycle.transport.close()
    finally:
        cycle.on_response = _nothing


def _nothing() -> None:
    return None
