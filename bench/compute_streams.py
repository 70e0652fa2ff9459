"""The open-streams scenario: what many long streams held open cost one gateway worker.

Real generations last seconds to minutes, so a centre's load is many open streams. This opens
OPEN_STREAMS streams on the direct path (one token every 100 ms each, from a fake model started
here after the file-descriptor limit is raised) and measures, from the gateway's /proc figures:
memory per open stream, CPU per relayed chunk, and the p99 of new short requests meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from bench.processes import rss_megabytes, tree_cpu_seconds

if TYPE_CHECKING:
    from bench.run import Report, Target

# 10,000 is the figure; one Python driver and fake model on the second core cannot feed
# 10,000 x 10 tokens/s, so `make bench` holds fewer (BENCH_OPEN_STREAMS raises it).
OPEN_STREAMS = int(os.environ.get("BENCH_OPEN_STREAMS", "200"))
TOKEN_INTERVAL = 0.1
WINDOW_SECONDS = 5.0
SHORT_REQUESTS = 100
BUDGET_STREAM_KB = 30.0
BUDGET_CHUNK_MS = 0.05
BUDGET_P99_MS = 50.0


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _load(target: Target, pid: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{target.port}{target.path}"
    headers = {"Authorization": target.auth}
    body = {
        "model": "bench-model",
        "messages": [{"role": "user", "content": "long"}],
        "stream": True,
        "fake": {"chunk_delay": TOKEN_INTERVAL, "chunks": 100_000},
    }
    chunks = 0
    opened = 0
    rss_idle = rss_megabytes(pid)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def hold() -> None:
            nonlocal chunks, opened
            async with http.post(url, json=body, headers=headers) as answer:
                opened += 1
                async for line in answer.content:
                    chunks += line.startswith(b"data:")

        streams = [asyncio.ensure_future(hold()) for _ in range(OPEN_STREAMS)]
        for _ in range(1200):  # at most two minutes to open them all
            if opened >= OPEN_STREAMS:
                break
            await asyncio.sleep(0.1)
        print(f"  {opened} streams open", flush=True)
        await asyncio.sleep(1.0)
        rss_open = rss_megabytes(pid)
        cpu, seen, started = tree_cpu_seconds(pid), chunks, time.perf_counter()
        short: list[float] = []
        quick = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as other:
            # Bounded in time: an overloaded machine gives fewer, slower samples, not a hang.
            while time.perf_counter() - started < WINDOW_SECONDS and len(short) < SHORT_REQUESTS:
                begun = time.perf_counter()
                async with other.post(url, json=quick, headers=headers) as answer:
                    await answer.read()
                short.append(time.perf_counter() - begun)
                await asyncio.sleep(WINDOW_SECONDS / SHORT_REQUESTS)
        print(f"  {len(short)} short requests timed", flush=True)
        cpu_s, relayed = tree_cpu_seconds(pid) - cpu, chunks - seen
        elapsed = time.perf_counter() - started
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    short.sort()
    return {
        "opened": float(opened),
        "kb_per_stream": (rss_open - rss_idle) * 1024 / max(1, opened),
        # The short requests' own CPU is in the window too: an upper bound per chunk.
        "cpu_ms_per_chunk": cpu_s * 1000 / max(1, relayed),
        "chunks_per_s": relayed / elapsed,
        "short": float(len(short)),
        "p50_ms": statistics.median(short) * 1000,
        "p99_ms": short[min(len(short) - 1, int(0.99 * len(short)))] * 1000,
    }


def bench(workdir: Path, report: Report) -> None:
    from bench.run import fake_backend, gateway

    raise_fd_limit(4 * OPEN_STREAMS + 1024)  # the gateway and model inherit it
    workdir.mkdir(parents=True, exist_ok=True)
    with fake_backend(workdir) as port, gateway(workdir, "sqlite", port) as target:
        assert target.pid is not None
        figures = asyncio.run(_load(target, target.pid))
    n = int(figures["opened"])
    report.add(
        f"{n} open streams (direct, 1 token/100 ms): kB/stream, CPU/chunk",
        f"{figures['kb_per_stream']:.1f} kB",
        f"{figures['cpu_ms_per_chunk']:.4f} ms",
        f"{figures['chunks_per_s']:.0f} chunks/s relayed; {figures['short']:.0f} new requests: p50 "
        f"{figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms",
    )
    report.check(
        f"{n} open streams", "≤ 30 kB/stream", figures["kb_per_stream"], BUDGET_STREAM_KB, "kB"
    )
    report.check(
        f"{n} open streams",
        "CPU ≤ 0.05 ms/chunk",
        figures["cpu_ms_per_chunk"],
        BUDGET_CHUNK_MS,
        "ms",
    )
    report.check(
        f"{n} open streams", "new requests p99 ≤ 50 ms", figures["p99_ms"], BUDGET_P99_MS, "ms"
    )
