"""Instructions per request of a gateway process, counted by valgrind's callgrind.

CPU time per request moves with whatever else the machine runs (the shared 2-core machines
here have given 0.25 to 0.9 ms for the same request); callgrind counts the instructions the
gateway executes, which do not. The gateway starts under callgrind with instrumentation off
(start-up and warm-up are not counted), `callgrind_control` turns it on for exactly the
measured requests, and the dump's total is divided by their number. Python runs ~50x slower
under callgrind, so the counts come from a few hundred requests, not a wrk run.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# A process under callgrind starts ~30x slower than without.
STARTUP_SECONDS = 300.0


def available() -> bool:
    return bool(shutil.which("valgrind") and shutil.which("callgrind_control"))


def prefix(outdir: Path) -> list[str]:
    """The command prefix that runs a process under callgrind, counting nothing yet."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={outdir}/callgrind.%p",
    ]


def send_requests(
    port: int, path: str, body: bytes, headers: dict[str, str], count: int, concurrency: int
) -> int:
    """`count` POSTs from `concurrency` keep-alive connections; the number answered 200."""
    answered = [0] * concurrency

    def connection(index: int) -> None:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for _ in range(count // concurrency):
                client.request("POST", path, body, headers)
                answer = client.getresponse()
                answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"the gateway answered {answer.status}")
                answered[index] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=connection, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(answered)


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, check=True)


def total_instructions(outdir: Path, pid: int) -> int:
    """The instructions of the process's numbered dumps (`--dump`'s; each dump's `totals:`
    line), not the one written at its exit."""
    total = 0
    for dump in sorted(outdir.glob(f"callgrind.{pid}.*")):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total


def counted(outdir: Path, pid: int, work: Callable[[], T]) -> tuple[int, T]:
    """The instructions the process executes while `work` runs (nothing else counted)."""
    before = total_instructions(outdir, pid)
    _control(pid, "--instr=on")
    result = work()
    _control(pid, "--dump")
    _control(pid, "--instr=off")
    return total_instructions(outdir, pid) - before, result


def instructions_per_request(
    outdir: Path,
    pid: int,
    port: int,
    path: str,
    body: bytes,
    headers: Sequence[tuple[str, str]],
    *,
    count: int,
    concurrency: int,
) -> float:
    """Warm up, then count the instructions of `count` requests alone."""
    head = dict(headers)
    send_requests(port, path, body, head, max(concurrency * 2, 64), concurrency)
    _control(pid, "--instr=on")
    answered = send_requests(port, path, body, head, count, concurrency)
    _control(pid, "--dump")
    _control(pid, "--instr=off")
    return total_instructions(outdir, pid) / answered
