"""Graceful drain on SIGTERM: refuse readiness, let open streams finish up to a bound, then end
the rest with a final error event in the caller's dialect.

uvicorn on SIGTERM stops accepting and waits for open requests; past its own
--timeout-graceful-shutdown it cancels them, and a cancelled stream just stops, with no last
event. So the drain runs its own, shorter clock (GATEWAY_DRAIN_SECONDS): at its end each stream
still open is cancelled with a marker, and the stream response turns that cancellation into an
error event the client can read. uvicorn's bound is set a few seconds longer (deploy/).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

# The cancel message that tells a stream it was cut by the drain, not by the client or server.
CUT_MESSAGE = "gateway drain deadline"


class Drain:
    """One per worker process: whether it is draining, and the streams it would cut."""

    def __init__(self) -> None:
        self.draining = False
        self.started_at: float | None = None
        self._streams: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def track(self, task: asyncio.Task[Any]) -> None:
        self._streams.add(task)

    def untrack(self, task: asyncio.Task[Any]) -> None:
        self._streams.discard(task)
        self._cut.discard(task)

    def was_cut(self, task: asyncio.Task[Any]) -> bool:
        return task in self._cut

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def begin(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        """Start draining (idempotent); streams still open after `seconds` are cut."""
        if self.draining:
            return
        self.draining = True
        self.started_at = time.monotonic()
        logger.info("Draining: %d open stream(s), cut after %.1f s.", len(self._streams), seconds)
        self._timer = loop.call_later(seconds, self.cut_all)

    def cut_all(self) -> None:
        if self._streams:
            logger.warning("Drain deadline: ending %d open stream(s).", len(self._streams))
        for task in list(self._streams):
            self._cut.add(task)
            task.cancel(msg=CUT_MESSAGE)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


_drain = Drain()


def current() -> Drain:
    return _drain


def install_signal_hook(loop: asyncio.AbstractEventLoop, seconds: float) -> None:
    """Chain a drain start before the server's own SIGTERM/SIGINT handler.

    Called from the lifespan startup, when uvicorn has already installed its handlers (it
    keeps them with signal.signal); outside a server (tests calling the app) nothing is
    installed, so nothing changes.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(sig: int, frame: FrameType | None, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(_drain.begin, loop, seconds)
            previous(sig, frame)

        signal.signal(signum, handler)
