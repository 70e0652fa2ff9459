"""Routes whose view is played as plain ASGI: the inference routes, whose answers may stream.

Starlette's `request_response` runs each view inside `wrap_app_handling_exceptions`, a second
copy of what the ExceptionMiddleware around the router does already, with the same handlers and
the same scope: two closures, their frames and a send wrapper per request, held for the whole
of an open stream (bench/compute_streams.py: about 1.2 kB of each open stream). Here a view's
error (a GatewayError before its answer starts) is rendered by that ExceptionMiddleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

View = Callable[[Request], Awaitable[Response]]


class _PlainView:
    """`view(request) -> Response` as an ASGI application (a class: Starlette would wrap a
    function in request_response)."""

    __slots__ = ("view",)

    def __init__(self, view: View) -> None:
        self.view = view

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.view(Request(scope, receive, send))
        await response(scope, receive, send)


class PlainRoute(Route):
    def __init__(self, path: str, view: View, methods: Sequence[str]) -> None:
        super().__init__(path, _PlainView(view), methods=list(methods), name=view.__name__)
