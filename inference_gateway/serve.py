"""The gateway's server command: uvicorn's command line, where a SIGTERM ends in exit status 0.

    python -m inference_gateway.serve inference_gateway.asgi:application --workers 4 ...

takes every uvicorn option. Why not `uvicorn` itself: on SIGTERM uvicorn shuts down gracefully
(the drain runs inside, resource_server_async/drain.py), then puts back the handler it found and
raises the signal again, "so that the expected behaviour happens". Under the plain `uvicorn`
command that handler is the default one, so a drained one-process server still dies of the
signal (status -15; 143 from a shell or a container runtime) and looks killed to a supervisor.
Here the handler it finds is `_stopped`: exit 0. With --workers N the supervisor handles the
signal itself and exits 0 once its workers have stopped.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

import uvicorn.main


def _stopped(signum: int, frame: FrameType | None) -> None:
    # Also what a SIGTERM before uvicorn took over (during start-up) does: nothing was open.
    sys.exit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.main.main()


if __name__ == "__main__":
    main()
