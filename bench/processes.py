"""Starting, pinning and measuring the benchmark's processes (gateway, backend) from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts import processes

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def pinned(command: list[str], core: int | None) -> list[str]:
    """Prefix `command` with taskset so that it runs on one core only (when there are 2+)."""
    if core is None or (os.cpu_count() or 1) < 2:
        return command
    return ["taskset", "-c", str(core), *command]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def system_seconds(pid: int) -> float:
    """The kernel's part of cpu_seconds: system calls, and the network stack they run."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / CLOCK_TICKS


def run_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, times scheduled in) of a process's threads so far, from each thread's
    /proc schedstat: nanosecond run time, where /proc/<pid>/stat counts in 10 ms ticks (an idle
    process's few ms a second would read as 0 or 10), and its wake-ups."""
    seconds, runs = 0.0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        seconds += int(fields[0]) / 1e9
        runs += int(fields[2])
    return seconds, runs


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def tree_cpu_seconds(pid: int, reading: Callable[[int], float] = cpu_seconds) -> float:
    """CPU time of a process and all its descendants (servers that fork workers); with
    `reading=system_seconds`, their kernel part."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += reading(current)
            pending += _children(current)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def rss_megabytes(pid: int) -> float:
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * PAGE_SIZE / 2**20


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        processes.stop(self.popen)


def start(
    name: str, command: list[str], env: dict[str, str], log: Path, core: int | None
) -> Process:
    return Process(name, processes.start(pinned(command, core), log, env=env, cwd=ROOT))


def python() -> str:
    return sys.executable
