"""The gateway's server command: uvicorn's command line, where a SIGTERM refuses new connections
at once, drains, and ends in exit status 0.

    python -m inference_gateway.serve inference_gateway.asgi:application --workers 4 ...

takes every uvicorn option. It differs from the `uvicorn` command in two ways, both for SIGTERM:

- Exit status 0. uvicorn shuts down gracefully (the drain runs inside,
  resource_server_async/drain.py), then puts back the handler it found and raises the signal
  again, "so that the expected behaviour happens". Under `uvicorn` that handler is the default
  one, so a drained one-process server still dies of the signal (status -15; 143 from a shell or
  a container runtime) and looks killed to a supervisor, and a process killed so skips its
  atexit functions: a worker lost the request-log lines of the streams its drain had just cut.
  Here the handler it finds is `_stopped`, in the supervisor and in each worker (spawned
  workers import this module as their main module, which installs it).
- With --workers N, the supervisor bound the listening socket and keeps it open while its
  workers drain: the kernel goes on accepting connections that no worker will ever take, so a
  proxy's request to a draining host waits for the whole drain instead of being refused and
  sent to another host. `_Supervisor` closes its copy when the signal comes; each worker closes
  its own as it starts draining, and from then on a connection is refused.

And one for an idle worker: uvicorn's main loop wakes ten times a second to see whether it
should exit, though all it does is keep the Date header current once a second (and count
requests for --limit-max-requests). `_Server` wakes once a second for that, and at once when
a signal asks it to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
import sys
from types import FrameType

from uvicorn.server import Server
from uvicorn.supervisors import Multiprocess

# The module: the package's attribute `uvicorn.main` is its command (a click Command).
_uvicorn_main = importlib.import_module("uvicorn.main")


def _stopped(signum: int, frame: FrameType | None) -> None:
    # Also what a SIGTERM before uvicorn took over (during start-up) does: nothing was open.
    sys.exit(0)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, which lets go of the listening socket before stopping its workers."""

    def handle_term(self) -> None:
        super().handle_term()
        self._release_sockets()

    def handle_int(self) -> None:
        super().handle_int()
        self._release_sockets()

    def _release_sockets(self) -> None:
        # The workers hold their own descriptors of the same socket: closing ours only means
        # that the socket goes away once they have closed theirs.
        for sock in self.sockets:
            sock.close()


# on_tick refreshes the Date header when its counter is a multiple of this (uvicorn's ticks
# are 0.1 s: ten make its second).
_TICKS_PER_SECOND = 10


class _Server(Server):
    """uvicorn's server, whose main loop wakes once a second, or when a signal stops it."""

    _stop_asked: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_asked = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + _TICKS_PER_SECOND) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._stop_asked.wait()
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A signal handler runs between bytecodes of the loop's thread: wake the loop safely.
        if self._loop is not None and self._stop_asked is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                self._loop.call_soon_threadsafe(self._stop_asked.set)


# At import, not in main(): multiprocessing's spawn runs this module's top level (not main())
# in every worker before uvicorn starts serving there.
signal.signal(signal.SIGTERM, _stopped)


def main() -> None:
    # What uvicorn.main.run starts for --workers N (a name it imports, not one it exports).
    _uvicorn_main.Multiprocess = _Supervisor  # type: ignore[attr-defined]
    _uvicorn_main.Server = _Server  # type: ignore[attr-defined]
    _uvicorn_main.main()


if __name__ == "__main__":
    main()
