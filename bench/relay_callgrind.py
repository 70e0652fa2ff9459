"""Instructions per relayed side-channel chunk, counted by callgrind (`--scenarios relay`).

CPU time per chunk on the shared 2-core machines moves by ±30 % between runs of the same code;
instructions do not. A gateway (Redis hub, then in-process) runs under callgrind against the
Compute stand-in; instrumentation is on for STREAMS probe streams of 20 chunks, then for as
many of 200: the difference over the extra chunks is what one more relayed chunk costs (its
side-channel POST, the hub, the SSE write), the streams' fixed part cancelling out. The result
polls are taken out of the count: the gateway polls once an hour here, and the function's
result is not waited for (a stream ends with the side channel's "done"). The longer streams
also last longer, so what the worker does each second whatever it relays (the catalog's check,
the GC policy's ticks, the metrics' write) would be counted in the extra chunks: an idle window
first gives its rate, which is taken out of each run by its length (the figure with it left
in is shown beside).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import callgrind, compute
from scripts.processes import free_port

if TYPE_CHECKING:
    from bench.run import Report

STREAMS = 4
SHORT, LONG = 20, 200
IDLE_SECONDS = 5.0


def _counted(
    directory: Path, pid: int, streams: list[int], driver: compute.Driver
) -> tuple[int, float]:
    """Instructions of the gateway while the streams of these many chunks run, one by one,
    and the seconds they took."""

    def run() -> tuple[list[float], float]:
        started = time.perf_counter()
        delays = asyncio.run(_run(driver, streams))
        return delays, time.perf_counter() - started

    instructions, (delays, seconds) = callgrind.counted(directory, pid, run)
    if len(delays) != sum(streams):
        raise RuntimeError(f"{len(delays)} chunks arrived of {sum(streams)}")
    return instructions, seconds


def _idle_rate(directory: Path, pid: int) -> float:
    """Instructions per second of the gateway relaying nothing."""
    instructions, _ = callgrind.counted(directory, pid, lambda: time.sleep(IDLE_SECONDS))
    return instructions / IDLE_SECONDS


async def _run(driver: compute.Driver, streams: list[int]) -> list[float]:
    import aiohttp

    delays: list[float] = []
    async with aiohttp.ClientSession() as http:
        for chunks in streams:
            delays += await driver.probe_stream(http, chunks)
    return delays


def bench(workdir: Path, standin: str, backend_port: int, report: Report) -> None:
    from bench.run import gateway

    for store, tag in (("postgres", "Redis"), ("sqlite", "in-process")):
        directory = workdir / store
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        overrides = {
            **compute.gateway_overrides(standin, port),
            "COMPUTE_POLL_INTERVAL": "3600",
            "STREAMING_RESULT_WAIT_SECONDS": "0",
        }
        print(f"\nrelay under callgrind, {tag} ({store})", flush=True)
        with gateway(
            directory,
            store,
            backend_port,
            overrides,
            database=compute.DATABASE + "_cg" if store == "postgres" else "",
            fixtures=compute.fixtures(directory, backend_port),
            port=port,
            command_prefix=callgrind.prefix(directory),
            startup_seconds=callgrind.STARTUP_SECONDS,
        ) as target:
            assert target.pid is not None
            driver = compute.Driver(target)
            asyncio.run(_run(driver, [SHORT, SHORT]))  # sign-in, connections, caches warm
            idle = _idle_rate(directory, target.pid)
            short, short_seconds = _counted(directory, target.pid, [SHORT] * STREAMS, driver)
            long, long_seconds = _counted(directory, target.pid, [LONG] * STREAMS, driver)
        extra = STREAMS * (LONG - SHORT)
        with_idle = (long - short) / extra
        per_chunk = with_idle - idle * (long_seconds - short_seconds) / extra
        report.add(
            f"relay ({tag}): instructions per extra relayed chunk (callgrind)",
            f"{per_chunk:,.0f}",
            f"{short / STREAMS:,.0f} per {SHORT}-chunk stream",
            f"{STREAMS} streams of {LONG} against {STREAMS} of {SHORT}, result polls off; "
            f"idle {idle:,.0f}/s taken out ({with_idle:,.0f} with it)",
        )
