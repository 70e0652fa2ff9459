"""Pure ASGI middleware around every inference request: the admission record, the rate-limit
headers, and the release of what admission charged, once the request has ended.

It sits outside the accounting capture, so that the real usage (filled by the capture at the
end) is known when the tickets are released. The last body message of an answer that holds a
ticket waits until the release is started: on Redis, its script call is then queued on the
process's one admission connection ahead of any later request's call, and written in the same
turn of the event loop, so a client that sends its next request on reading the end of this one
sees its limits already corrected (on this worker strictly, on another one as soon as that one's
call reaches Redis, which it cannot before this one's: the client has not read the end yet).
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resource_server_async.admission.headers import rate_limit_headers
from resource_server_async.admission.ticket import AdmissionState

_PREFIX = "/resource_server/"


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(_PREFIX) or "/v1/" not in path:
            await self.app(scope, receive, send)
            return
        state = scope.get("state")
        if state is None:
            scope["state"] = state = {}
        admission = AdmissionState()
        state["admission"] = admission
        limited = _Limited(admission, path.endswith("/v1/messages"), send)
        try:
            await self.app(scope, receive, limited.send)
        finally:
            if admission.tickets:
                waiting = admission.start_release(state.get("outcome"))
                if waiting is not None:
                    await waiting
            for message in limited.held:
                await send(message)


class _Limited:
    """One request's `send` with the rate-limit headers added to its start, and its last body
    message held while it holds tickets (released first). A bound method of one small object,
    not a closure and its cells, since it is held as long as the request."""

    __slots__ = ("_send", "admission", "anthropic", "held")

    def __init__(self, admission: AdmissionState, anthropic: bool, send: Send) -> None:
        self.admission = admission
        self.anthropic = anthropic
        self.held: list[Message] = []
        self._send = send

    def send(self, message: Message) -> Awaitable[None]:
        # The next send's awaitable, not a coroutine of its own (api/edge.py says why).
        kind = message["type"]
        admission = self.admission
        if kind == "http.response.start":
            if admission.decision is not None:
                headers = list(message.get("headers", ()))
                headers += rate_limit_headers(admission.buckets, admission.decision, self.anthropic)
                message["headers"] = headers
        elif (
            kind == "http.response.body"
            and admission.tickets
            and not message.get("more_body", False)
        ):
            self.held.append(message)
            return _SENT
        return self._send(message)


class _Sent:
    """An awaitable that is complete at once: what `send` gives for a message it holds."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


_SENT = _Sent()
