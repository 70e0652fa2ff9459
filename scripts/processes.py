"""Local servers as child processes: ports, starting, waiting until they answer, stopping.

Shared by the demo, the end-to-end tests and the benchmark, which all run the gateway and model
servers on loopback; standard library only, so that each can import it without set-up.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# How the demo, the tests and the benchmark serve the gateway, as production does: uvloop, and
# uvicorn's httptools protocol with the gateway's header size bound (inference_gateway/server.py).
SERVING_OPTIONS = (
    "--no-access-log",
    "--loop",
    "uvloop",
    "--http",
    "inference_gateway.server:HttpToolsProtocol",
)
# Long enough for uvicorn to finish open requests and stop its workers.
STOP_TIMEOUT = 15.0


class ExitedEarly(RuntimeError):
    """The process that was waited for ended before it was ready."""

    def __init__(self, returncode: int) -> None:
        super().__init__(f"process exited with {returncode}")
        self.returncode = returncode


def free_port() -> int:
    """A loopback port that nothing listens on now, chosen by the system."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on loopback `port` now."""
    with socket.socket() as sock:
        # As servers bind: a port that a stopped server left in TIME_WAIT is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def gateway_command(port: int, *options: str, server: str = "inference_gateway.serve") -> list[str]:
    """The gateway's server command serving its one ASGI entry point on loopback `port`:
    `server` is the module run, one that takes uvicorn's options (inference_gateway/serve.py,
    or the bench's traced launcher)."""
    return [
        sys.executable,
        "-m",
        server,
        "inference_gateway.asgi:application",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        *options,
    ]


def manage(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """`manage.py <args>` of this project run to its end, its output captured as text."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=check,
    )


def start(
    command: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    append: bool = False,
    detached: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `command` with its stdout and stderr in the file `log` (emptied first unless
    `append`). A `detached` process has a session of its own and no standard input: a Ctrl-C
    in the terminal reaches only its parent, which can then stop its children in order."""
    with open(log, "ab" if append else "wb") as file:
        # The child writes through its own copy of the descriptor, so ours can close now.
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL if detached else None,
            stdout=file,
            stderr=subprocess.STDOUT,
            start_new_session=detached,
        )


def wait_until(
    ready: Callable[[], bool],
    timeout: float,
    process: subprocess.Popen[Any] | None = None,
    interval: float = 0.1,
) -> bool:
    """Ask `ready` every `interval` seconds: True once it is, False when `timeout` seconds have
    passed; ExitedEarly if `process` ends first (it will never be ready then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ExitedEarly(process.returncode)
        if ready():
            return True
        time.sleep(interval)
    return False


def wait_for_http(
    url: str, timeout: float = 30.0, process: subprocess.Popen[Any] | None = None
) -> None:
    """Wait until GET `url` answers 200; fail early if `process` died. The error names the
    last answer, which is usually why a server did not come up."""
    last: Exception | str = "no answer"

    def answers() -> bool:
        nonlocal last
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return True
                last = f"status {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}: {exc.read()[:200]!r}"
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        return False

    try:
        if wait_until(answers, timeout, process):
            return
    except ExitedEarly as exc:
        raise RuntimeError(f"process exited with {exc.returncode} before {url} answered") from None
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s: {last}")


def stop(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds. Only the process
    itself is signalled, not its group: a server stops its own workers on SIGTERM."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
