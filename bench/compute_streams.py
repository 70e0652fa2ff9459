"""The open-streams scenario: what many long streams held open cost one gateway worker.

Real generations last seconds to minutes, so a centre's load is many open streams. For each of
STREAM_COUNTS (100, 1,000 and 10,000, or as many as the file-descriptor limit allows: two per
stream in the gateway) a fresh gateway worker (core 0) relays streams on the direct path from
bench/stream_model.py (a timer wheel on a raw asyncio server) to bench/stream_driver.py (a raw
asyncio client that only counts events), both on core 1. Measured from the gateway's /proc
figures: memory per open stream (RSS after all are open and flowing, minus before, over N),
CPU per relayed chunk (a window without other requests), and the p99 of new short requests
meanwhile, with the full garbage collections (and their pauses) that fell among them. The
gateway runs under bench/traced_gateway.py (uvicorn with a gc callback); a last run at
PROFILE_STREAMS, with tracemalloc on, says where the per-stream memory goes. The gateway's GC
policy (GC_FREEZE_SECONDS, api/gc_policy.py) is on as deployed: the full collections counted
are CPython's own (over what is not frozen) and the policy's thaws (over everything).

The issue's rate, one token per 100 ms per stream, is 100,000 chunks/s at 10,000 streams: even
at the budget's 0.05 ms per chunk that is 5 s of CPU per second, five cores, so one worker
cannot relay it (the notes give the figure at the measured cost). Each run asks for at most
RELAYED_PER_S chunks/s (the token interval stretched to N / RELAYED_PER_S when that exceeds
100 ms); memory per open stream does not depend on the rate, and the CPU per chunk is measured
at a rate the worker sustains.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import orjson
import uvloop

from bench.processes import rss_megabytes, system_seconds, tree_cpu_seconds
from bench.program_parts import part_of
from bench.stream_driver import Tally, close_all, open_streams, post_request

if TYPE_CHECKING:
    from bench.run import Report, Target

OPEN_STREAMS = int(os.environ.get("BENCH_OPEN_STREAMS", "10000"))
# While iterating on one figure: BENCH_STREAM_COUNTS=9900 runs that count alone, and
# BENCH_STREAM_PROFILE=0 skips the tracemalloc run.
STREAM_COUNTS = tuple(
    int(n) for n in os.environ.get("BENCH_STREAM_COUNTS", f"100,1000,{OPEN_STREAMS}").split(",")
)
PROFILING = os.environ.get("BENCH_STREAM_PROFILE", "1") != "0"
TOKEN_INTERVAL = 0.1  # the issue's: one token per 100 ms per stream
# What one worker is asked to relay: about a fifth of its core, which leaves room for new
# requests on a core shared with other work (5,000/s left the gateway, there, no CPU to spare).
RELAYED_PER_S = 2000
PROFILE_STREAMS = 1000
PROFILE_INTERVAL = 1.0  # tracing slows the gateway: a slower stream for the memory profile
WARM_STREAMS = 5  # opened and closed first: pools, caches and lazy imports out of the figure
OPENING_AT_ONCE = 64
OPENING_SECONDS = 90.0  # then the streams open so far are measured
CPU_WINDOW = 4.0
SHORT_REQUESTS = 100
SHORT_WINDOW = 5.0
FD_RESERVE = 200  # the gateway's own files (listener, logs, database, epoll) and short requests
BUDGET_STREAM_KB = 30.0
BUDGET_CHUNK_MS = 0.05
BUDGET_P99_MS = 50.0


def raise_fd_limit() -> int:
    """Soft to hard for this process and the servers it starts; the streams one gateway can
    hold under it (a client and an upstream socket each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard == resource.RLIM_INFINITY:
        return OPEN_STREAMS
    return (hard - FD_RESERVE) // 2


def run_queue_seconds(pid: int) -> float:
    """Time the gateway's event loop (its main thread) has spent runnable but waiting for a
    core: on a machine shared with other work, what its latency owes to them."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def interval_for(streams: int) -> float:
    return max(TOKEN_INTERVAL, streams / RELAYED_PER_S)


def pool_for(streams: int) -> dict[str, str]:
    """Gateway settings for `streams` open to one model server: each holds a pooled
    connection (UPSTREAM_MAX_CONNECTIONS, 256 by default, is per server), and the short
    requests need one more."""
    return {"UPSTREAM_MAX_CONNECTIONS": str(streams + 64)}


def stream_body(interval: float) -> bytes:
    return orjson.dumps(
        {
            "model": "bench-model",
            "messages": [{"role": "user", "content": "long"}],
            "stream": True,
            "fake": {"chunk_delay": interval},
        }
    )


async def _short_requests(target: Target) -> list[float]:
    """New non-streamed requests, one at a time, spaced over SHORT_WINDOW: their latencies."""
    url = f"http://127.0.0.1:{target.port}{target.path}"
    quick = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": target.auth}
    latencies: list[float] = []
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=SHORT_WINDOW * 4)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        # Bounded in time: an overloaded gateway gives fewer, slower samples, not a hang.
        while time.perf_counter() - started < SHORT_WINDOW and len(latencies) < SHORT_REQUESTS:
            begun = time.perf_counter()
            async with http.post(url, json=quick, headers=headers) as answer:
                await answer.read()
            latencies.append(time.perf_counter() - begun)
            await asyncio.sleep(SHORT_WINDOW / SHORT_REQUESTS)
    return sorted(latencies)


def full_collections(log: Path) -> list[float]:
    """The gateway's full garbage collections so far, ms each (bench/traced_gateway.py)."""
    lines = log.read_text().splitlines() if log.exists() else []
    return [float(line.split()[0]) for line in lines]


async def _hold(target: Target, streams: int, interval: float, gc_log: Path) -> dict[str, float]:
    pid = target.pid
    assert pid is not None
    request = post_request(target.port, target.path, target.auth, stream_body(interval))
    warm = await open_streams(target.port, request, WARM_STREAMS, Tally(), OPENING_AT_ONCE)
    await asyncio.sleep(interval * 2)
    close_all(warm)
    await _short_requests_warm(target)
    await asyncio.sleep(1.0)
    rss_idle, tally = rss_megabytes(pid), Tally()
    before_opening = len(full_collections(gc_log))
    begun = time.perf_counter()
    clients = await open_streams(
        target.port, request, streams, tally, OPENING_AT_ONCE, OPENING_SECONDS
    )
    opening = time.perf_counter() - begun
    print(
        f"  {tally.opened} streams open in {opening:.1f} s ({tally.failed} failed"
        f"{': ' + tally.refusal if tally.refusal else ''})",
        flush=True,
    )
    await asyncio.sleep(max(1.0, 2 * interval))  # every stream has relayed tokens
    rss_open = rss_megabytes(pid)
    cpu, kernel = tree_cpu_seconds(pid), tree_cpu_seconds(pid, system_seconds)
    seen, started = tally.events, time.perf_counter()
    await asyncio.sleep(CPU_WINDOW)
    cpu_s, relayed = tree_cpu_seconds(pid) - cpu, tally.events - seen
    kernel_s = tree_cpu_seconds(pid, system_seconds) - kernel
    elapsed = time.perf_counter() - started
    waited, collected = run_queue_seconds(pid), len(full_collections(gc_log))
    short = await _short_requests(target)
    short_window = time.perf_counter() - started - elapsed
    waited = run_queue_seconds(pid) - waited
    pauses = full_collections(gc_log)[collected:]
    held = full_collections(gc_log)[before_opening:]  # from the first stream opened on
    print(f"  {len(short)} short requests timed", flush=True)
    close_all(clients)
    if keep := os.environ.get("BENCH_GC_KEEP"):  # the full collections' log, for a look after
        await asyncio.sleep(3.0)  # the closed streams are gone
        os.kill(pid, signal.SIGUSR2)  # traced_gateway: how much of the frozen is garbage
        await asyncio.sleep(3.0)
        _keep_gc_log(gc_log, Path(keep))
    return {
        "opened": float(tally.opened),
        "failed": float(tally.failed),
        "open_s": opening,
        "waited_share": waited / short_window,
        "full_gcs": float(len(pauses)),
        "longest_gc_ms": max(pauses, default=0.0),
        "held_gcs": float(len(held)),
        "held_longest_gc_ms": max(held, default=0.0),
        "kb_per_stream": (rss_open - rss_idle) * 1024 / max(1, tally.opened),
        "rss_open": rss_open,
        "cpu_ms_per_chunk": cpu_s * 1000 / max(1, relayed),
        "kernel_ms_per_chunk": kernel_s * 1000 / max(1, relayed),
        "cpu_share": cpu_s / elapsed,
        "chunks_per_s": relayed / elapsed,
        "asked_per_s": tally.opened / interval,
        "short": float(len(short)),
        "p50_ms": statistics.median(short) * 1000 if short else float("nan"),
        "p99_ms": short[min(len(short) - 1, int(0.99 * len(short)))] * 1000
        if short
        else float("nan"),
    }


def _keep_gc_log(gc_log: Path, keep: Path) -> None:
    """The full collections' lines, then the probe's (what of the frozen was garbage)."""
    probe = gc_log.with_name(gc_log.name + ".probe")
    texts = [path.read_text() for path in (gc_log, probe) if path.exists()]
    keep.write_text("".join(texts))


async def _short_requests_warm(target: Target) -> None:
    url = f"http://127.0.0.1:{target.port}{target.path}"
    quick = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            async with http.post(url, json=quick, headers={"Authorization": target.auth}) as a:
                await a.read()


async def _snapshot(pid: int, directory: Path, index: int) -> tracemalloc.Snapshot:
    os.kill(pid, signal.SIGUSR1)
    path = directory / f"snapshot-{index}.trace"
    for _ in range(600):
        if path.exists():
            return tracemalloc.Snapshot.load(str(path))
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the traced gateway wrote no {path.name}")


async def _profile(target: Target, directory: Path, streams: int) -> list[tuple[str, float]]:
    """(part, bytes per open stream) from the heap before and after opening `streams`."""
    assert target.pid is not None
    request = post_request(target.port, target.path, target.auth, stream_body(PROFILE_INTERVAL))
    warm = await open_streams(target.port, request, WARM_STREAMS, Tally(), OPENING_AT_ONCE)
    await asyncio.sleep(2 * PROFILE_INTERVAL)
    close_all(warm)
    await asyncio.sleep(1.0)
    before = await _snapshot(target.pid, directory, 0)
    tally = Tally()
    clients = await open_streams(target.port, request, streams, tally, OPENING_AT_ONCE)
    await asyncio.sleep(2 * PROFILE_INTERVAL)
    after = await _snapshot(target.pid, directory, 1)
    close_all(clients)
    if os.environ.get("BENCH_STREAM_LINES"):  # while cutting: the largest allocating lines
        for diff in after.compare_to(before, "lineno")[:40]:
            frame = diff.traceback[0]
            print(
                f"  {diff.size_diff / max(1, tally.opened):7.0f} B/stream "
                f"{diff.count_diff / max(1, tally.opened):5.1f} blocks "
                f"{frame.filename.rsplit('site-packages/', 1)[-1]}:{frame.lineno}",
                flush=True,
            )
    parts: dict[str, float] = {}
    for diff in after.compare_to(before, "filename"):
        part = part_of(diff.traceback[0].filename)
        parts[part] = parts.get(part, 0.0) + diff.size_diff / max(1, tally.opened)
    return sorted(parts.items(), key=lambda item: -item[1])


def bench(workdir: Path, report: Report) -> None:
    from bench.run import fake_backend, gateway

    most = raise_fd_limit()
    workdir.mkdir(parents=True, exist_ok=True)
    counts = sorted({min(n, most) for n in STREAM_COUNTS})
    largest: dict[str, float] = {}
    with fake_backend(workdir, "bench.stream_model") as model:
        for n in counts:
            interval = interval_for(n)
            print(f"  {n} streams, one token per {interval:g} s each", flush=True)
            sub = workdir / f"streams-{n}"
            sub.mkdir(exist_ok=True)
            gc_log = sub / "gc.log"
            overrides = {**pool_for(n), "BENCH_GC_LOG": str(gc_log)}
            with gateway(sub, "sqlite", model, overrides, server="bench.traced_gateway") as target:
                figures = uvloop.run(_hold(target, n, interval, gc_log))
            _report(report, n, interval, figures)
            largest = figures
        if not PROFILING:
            return
        traces = workdir / "traces"
        traces.mkdir(exist_ok=True)
        overrides = {**pool_for(PROFILE_STREAMS), "BENCH_TRACE_DIR": str(traces)}
        with gateway(traces, "sqlite", model, overrides, server="bench.traced_gateway") as target:
            parts = uvloop.run(_profile(target, traces, PROFILE_STREAMS))
    total = sum(size for _, size in parts)
    top = ", ".join(f"{name} {size / 1024:.1f}" for name, size in parts[:10] if size > 0)
    report.notes.append(
        f"Open streams, where the memory goes (tracemalloc, {PROFILE_STREAMS:,} streams, "
        f"Python heap by the allocating file, kB per stream; RSS also holds what C code "
        f"allocates outside it): {total / 1024:.1f} kB in all; {top}."
    )
    per_chunk = largest["cpu_ms_per_chunk"] / 1000
    report.notes.append(
        f"Open streams, the arithmetic: at {per_chunk * 1000:.3f} ms of CPU per chunk one "
        f"worker's core relays at most {1 / per_chunk:,.0f} chunks/s, {0.1 / per_chunk:,.0f} "
        f"streams at one token per 100 ms; the issue's 10,000 such streams are 100,000 "
        f"chunks/s, {100_000 * per_chunk:.1f} cores at this cost and still "
        f"{100_000 * BUDGET_CHUNK_MS / 1000:.0f} at the 0.05 ms budget: hence the stretched "
        f"interval (at most {RELAYED_PER_S:,} chunks/s asked), and several workers for such a "
        f"load."
    )
    if most < OPEN_STREAMS:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        report.notes.append(
            f"Open streams: {most:,} instead of {OPEN_STREAMS:,}: the hard RLIMIT_NOFILE here "
            f"is {hard:,} (raising it needs CAP_SYS_RESOURCE), and each stream holds two sockets "
            f"in the gateway (the client's and the model server's)."
        )


def _report(report: Report, n: int, interval: float, figures: dict[str, float]) -> None:
    opened = int(figures["opened"])
    tag = f"{opened:,} open streams"
    failed = f", {figures['failed']:.0f} failed" if figures["failed"] else ""
    report.add(
        f"{tag} (direct, 1 token/{interval * 1000:g} ms each): kB/stream, CPU/chunk",
        f"{figures['kb_per_stream']:.1f} kB (RSS {figures['rss_open']:.0f} MB)",
        f"{figures['cpu_ms_per_chunk']:.4f} ms",
        f"{figures['kernel_ms_per_chunk']:.4f} ms of the CPU per chunk in the kernel; "
        f"{figures['chunks_per_s']:,.0f} of {figures['asked_per_s']:,.0f} chunks/s relayed "
        f"({figures['cpu_share'] * 100:.0f} % of core 0); opened in {figures['open_s']:.1f} s"
        f"{failed}; "
        f"{figures['short']:.0f} new requests: p50 {figures['p50_ms']:.1f} ms, "
        f"p99 {figures['p99_ms']:.1f} ms, the loop waiting for core 0 "
        f"{figures['waited_share'] * 100:.0f} % of that time, {figures['full_gcs']:.0f} full "
        f"garbage collections in it (longest {figures['longest_gc_ms']:.0f} ms), "
        f"{figures['held_gcs']:.0f} from the first stream opened to the last request (longest "
        f"{figures['held_longest_gc_ms']:.0f} ms)",
    )
    report.check(tag, "≤ 30 kB/stream", figures["kb_per_stream"], BUDGET_STREAM_KB, "kB")
    report.check(tag, "CPU ≤ 0.05 ms/chunk", figures["cpu_ms_per_chunk"], BUDGET_CHUNK_MS, "ms")
    report.check(tag, "new requests p99 ≤ 50 ms", figures["p99_ms"], BUDGET_P99_MS, "ms")


def append_section(report: Report, args: argparse.Namespace) -> None:
    """A dated section at the end of --output (`--scenarios streams` run alone)."""
    from bench.run import append_section as append

    append(
        report,
        args,
        "Open streams (direct path, one worker)",
        "python -m bench.run --scenarios streams",
        (__doc__ or "").split("\n\n", 1)[1].strip().replace("\n", " "),
        "detail",
        columns=("memory", "CPU per chunk"),
    )
