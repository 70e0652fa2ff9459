"""Where the gateway's CPU goes in the scenarios whose budgets are tight: cProfile over one
measured window, summed by part of the program (a package, or our module), per unit of work.

    python -m bench.cpu_profile [--output RESULTS.md] [relay-redis relay-inprocess compute-c1
                                                        streams]

- relay-redis, relay-inprocess: probe streams of 200 chunks through the side channel (the
  compute scenario's relay, bench/compute.py), per relayed chunk;
- compute-c1: non-streaming Compute tasks one at a time, per task;
- streams: 1,000 open streams on the direct path (bench/compute_streams.py), per chunk.

The gateway runs under bench/traced_gateway.py, which turns cProfile on and off on a signal,
so start-up and warm-up are not in the figures. cProfile slows Python by 2-3x and counts each
call, so the shares are what to read, not the times; its own overhead falls mostly on the
parts with many small calls. A C function's time is its caller's when cProfile does not see it
(uvloop's transport writes, hence most system calls): the scenario rows of `bench.run` give the
kernel's part from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

from bench import compute, compute_streams
from bench.program_parts import part_of, source_of
from bench.traced_gateway import PROFILE_START, PROFILE_STOP

if TYPE_CHECKING:
    from bench.run import Report, Target

SERVER = "bench.traced_gateway"
RELAY_STREAMS = 10
RELAY_CHUNKS = 200
COMPUTE_TASKS = 300
OPEN_STREAMS = 1000
SHOWN_PARTS = 12
SHOWN_FUNCTIONS = 12


@dataclass(frozen=True)
class Profile:
    """One scenario's window: the statistics' file and the units of work done in it."""

    scenario: str
    unit: str
    units: int
    stats: Path


def by_part(profile: Profile) -> list[tuple[str, float]]:
    """(part, share of the window's profiled time), largest first."""
    stats = pstats.Stats(str(profile.stats))
    parts: dict[str, float] = {}
    for (filename, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        parts[part_of(filename)] = parts.get(part_of(filename), 0.0) + row[2]
    total = sum(parts.values()) or 1.0
    return sorted(((part, seconds / total) for part, seconds in parts.items()), key=lambda p: -p[1])


def top_functions(profile: Profile) -> list[tuple[str, float, float]]:
    """(function, share of the profiled time, calls per unit), by own time, largest first."""
    stats = pstats.Stats(str(profile.stats))
    rows = stats.stats.items()  # type: ignore[attr-defined]
    total = sum(row[2] for _, row in rows) or 1.0
    ranked = sorted(rows, key=lambda item: -item[1][2])[:SHOWN_FUNCTIONS]
    out = []
    for (filename, line, name), row in ranked:
        where = source_of(filename)
        label = name if where is None else f"{where}:{line} {name}"
        out.append((label, row[2] / total, row[1] / max(1, profile.units)))
    return out


@contextmanager
def window(pid: int, stats: Path) -> Iterator[None]:
    """cProfile on in the gateway for the block; its statistics in `stats` after it."""
    os.kill(pid, PROFILE_START)
    yield
    os.kill(pid, PROFILE_STOP)
    for _ in range(300):
        if stats.exists():
            return
        time.sleep(0.1)
    raise RuntimeError(f"the profiled gateway wrote no {stats.name}")


def relay(store: str, tag: str) -> Callable[[Path, int], Profile]:
    def run(workdir: Path, backend_port: int) -> Profile:
        stats = workdir / f"relay-{store}.prof"
        with (
            compute.standin_process(workdir) as standin,
            compute.compute_gateway(
                workdir, store, backend_port, standin, {"BENCH_CPROFILE": str(stats)}, server=SERVER
            ) as target,
        ):
            assert target.pid is not None
            driver = compute.Driver(target)
            asyncio.run(compute._streams(driver, 5, 20))  # warm: sign-in, hub, connections
            with window(target.pid, stats):
                asyncio.run(compute._streams(driver, RELAY_STREAMS, RELAY_CHUNKS))
        return Profile(f"relay ({tag})", "chunk", RELAY_STREAMS * RELAY_CHUNKS, stats)

    return run


def compute_c1(workdir: Path, backend_port: int) -> Profile:
    stats = workdir / "compute-c1.prof"
    with (
        compute.standin_process(workdir) as standin,
        compute.compute_gateway(
            workdir,
            "postgres",
            backend_port,
            standin,
            {"BENCH_CPROFILE": str(stats)},
            server=SERVER,
        ) as target,
    ):
        assert target.pid is not None
        driver = compute.Driver(target)
        asyncio.run(compute._concurrent(driver, 4, 20))
        with window(target.pid, stats):
            asyncio.run(compute._concurrent(driver, 1, COMPUTE_TASKS))
    return Profile("Compute, one task at a time (Redis)", "task", COMPUTE_TASKS, stats)


def open_streams(workdir: Path, backend_port: int) -> Profile:
    from bench.run import fake_backend, gateway

    stats = workdir / "streams.prof"
    (workdir / "streams").mkdir()
    compute_streams.raise_fd_limit()
    interval = compute_streams.interval_for(OPEN_STREAMS)
    overrides = {**compute_streams.pool_for(OPEN_STREAMS), "BENCH_CPROFILE": str(stats)}
    with (
        fake_backend(workdir, "bench.stream_model") as model,
        gateway(workdir / "streams", "sqlite", model, overrides, server=SERVER) as target,
    ):
        assert target.pid is not None
        relayed = uvloop.run(_streams_window(target, interval, stats))
    return Profile(f"{OPEN_STREAMS:,} open streams (direct)", "chunk", relayed, stats)


async def _streams_window(target: Target, interval: float, stats: Path) -> int:
    assert target.pid is not None
    body = compute_streams.stream_body(interval)
    request = compute_streams.post_request(target.port, target.path, target.auth, body)
    tally = compute_streams.Tally()
    clients = await compute_streams.open_streams(
        target.port, request, OPEN_STREAMS, tally, compute_streams.OPENING_AT_ONCE
    )
    await asyncio.sleep(2 * interval)  # every stream has relayed tokens
    seen = tally.events
    with window(target.pid, stats):
        await asyncio.sleep(compute_streams.CPU_WINDOW)
    relayed = tally.events - seen
    compute_streams.close_all(clients)
    return relayed


SCENARIOS: dict[str, Callable[[Path, int], Profile]] = {
    "relay-redis": relay("postgres", "Redis"),
    "relay-inprocess": relay("sqlite", "in-process"),
    "compute-c1": compute_c1,
    "streams": open_streams,
}


def describe(profile: Profile) -> list[str]:
    """The profile as Markdown: its parts, then its functions by own time."""
    parts = ", ".join(
        f"{part} {share * 100:.0f} %" for part, share in by_part(profile)[:SHOWN_PARTS]
    )
    lines = [
        f"Where the CPU goes (cProfile, bench/cpu_profile.py): **{profile.scenario}**, "
        f"{profile.units:,} {profile.unit}s profiled. By part: {parts}.",
        f"  Functions by own time (share; calls per {profile.unit}):",
    ]
    lines += [
        f"  - {label}: {share * 100:.1f} %; {calls:.1f}"
        for label, share, calls in top_functions(profile)
    ]
    return lines


def append_section(output: Path, lines: list[str]) -> None:
    """A dated section at the end of `output`, the rest of the file kept."""
    from bench.run import machine

    section = [
        "",
        f"## Where the gateway's CPU goes (cProfile), {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        "",
        f"Machine: {machine()}  ",
        "Command: `python -m bench.cpu_profile`",
        "",
        " ".join(__doc__.split("\n\n")[3].split()),
        "",
        *lines,
        "",
    ]
    with output.open("a") as out:
        out.write("\n".join(section))


def bench(workdir: Path, backend_port: int, report: Report) -> None:
    """`bench.run --scenarios cpu_profile` (part of `make bench`): each profile a note of the
    run's section, beside the budgets it explains."""
    for name, run in SCENARIOS.items():
        print(f"\n== cpu profile: {name}", flush=True)
        sub = workdir / name
        sub.mkdir(parents=True)
        report.notes.append("\n".join(describe(run(sub, backend_port))))


def main() -> None:
    from bench.run import fake_backend

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)} (all by default)")
    parser.add_argument("--output", type=Path, help="also add a dated section to this file")
    args = parser.parse_args()
    args.scenarios = args.scenarios or list(SCENARIOS)
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cpu-profile-") as tmp:
        workdir = Path(tmp)
        with fake_backend(workdir) as backend_port:
            for name in args.scenarios:
                print(f"\n== {name}", flush=True)
                sub = workdir / name
                sub.mkdir()
                described = describe(SCENARIOS[name](sub, backend_port))
                lines += ["- " + described[0], *described[1:]]
                print("\n".join(lines[-SHOWN_FUNCTIONS - 2 :]), flush=True)
    if args.output:
        append_section(args.output, lines)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
