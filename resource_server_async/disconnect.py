"""A client's disconnect, told by the server's protocol instead of by a task parked on receive().

ASGI tells an application that its client hung up only through `receive()`, so an application
busy elsewhere (relaying a stream, awaiting a model's answer) needs a second task awaiting
`receive()` for the whole request: a task, its frames and a future per open stream
(bench/compute_streams.py: about 1.7 kB of each stream's 37). The gateway's HTTP protocol
(inference_gateway/server.py) offers `scope["extensions"][EXTENSION]["notice"]` instead: a
`DisconnectNotice` whose `watch(callback)` has `callback` called once, in the same turn of the
event loop, when the connection is lost before the answer is complete. Under another server
(uvicorn's own protocol in some tests) the extension is absent and `ClientWatch` falls back to
the task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any, Protocol

EXTENSION = "gateway.disconnect"


class DisconnectNotice(Protocol):
    def watch(self, callback: Callable[[], object]) -> None:
        """Call `callback` when the connection is lost before the current answer completed
        (at once, if it is lost already)."""

    def unwatch(self, callback: Callable[[], object]) -> None:
        """Forget `callback` (compared by equality), if it is still the one watched."""


def notice_of(scope: MutableMapping[str, Any]) -> DisconnectNotice | None:
    extension = (scope.get("extensions") or {}).get(EXTENSION)
    if extension is None:
        return None
    notice: DisconnectNotice | None = extension.get("notice")
    return notice


class ClientWatch:
    """Cancels `task` if the client hangs up while watched; `disconnected` says it did.

    `on_gone` (the request's outcome, if any) is told too: with the server's notice, no
    `http.disconnect` message passes through the middlewares' `receive`. Call it once the
    request's body has been read: from then on the only message `receive` can bring is
    `http.disconnect`.
    """

    __slots__ = ("_notice", "_on_gone", "_task", "_waiter", "disconnected")

    def __init__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Any],
        task: asyncio.Task[Any],
        on_gone: Callable[[], object] | None = None,
    ) -> None:
        self.disconnected = False
        self._task: asyncio.Task[Any] | None = task
        self._on_gone = on_gone
        self._waiter: asyncio.Task[None] | None = None
        self._notice = notice_of(scope)
        if self._notice is not None:
            self._notice.watch(self._client_gone)
        else:
            self._waiter = asyncio.get_running_loop().create_task(self._receive_until_gone(receive))

    def _client_gone(self) -> None:
        if self._task is None:
            return  # stopped meanwhile: the task is past what was watched
        self.disconnected = True
        if self._on_gone is not None:
            self._on_gone()
        self._task.cancel()

    async def _receive_until_gone(self, receive: Callable[[], Any]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._client_gone()

    def stop(self) -> None:
        """Stop watching (idempotent); the task is no longer cancelled for a disconnect."""
        self._task = None
        if self._notice is not None:
            self._notice.unwatch(self._client_gone)
        elif self._waiter is not None:
            self._waiter.cancel()
            self._waiter = None
