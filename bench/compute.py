"""The compute scenario: what the gateway adds to a Globus Compute round trip, and to its streams.

`bench.run --scenarios compute` starts the Compute stand-in (bench/compute_standin.py, its own
process on the driver's core, SERVICE_LATENCY per call) and one gateway worker (core 0) whose
catalog has one Globus Compute endpoint served by it, so the gateway's real SDK code submits,
polls and reads results over HTTP. Measured, each from the gateway's own /proc figures:
1. non-streaming at concurrency 1, 32, 256: gateway CPU per task, tasks/s, and the latency the
   gateway adds over the stand-in's own time (its two service calls plus the function's call to
   the model, measured directly); before them, as a figure of its own, the gateway's CPU and
   wake-ups per second with no request at all (at concurrency 1 a task lasts ~30 ms, so what
   the worker does every second whatever its load is part of each task's figure);
2. streaming, 20 chunks, with Redis and with the in-process hub: the time from a chunk's
   side-channel POST (the probe function stamps its wall-clock start into the chunk) to the
   client reading it, and gateway CPU per relayed chunk: the same streams with 200 chunks
   against 20, CPU difference over the extra chunks (the result polls made meanwhile, counted
   by the stand-in, are shown beside it: a longer stream waits longer for its result), with its
   kernel part; and the CPU per relayed chunk of the real inference function's streams of the
   fake model at a token per TOKEN_SECONDS (the function POSTs the lines that arrived within its
   BATCH_SECONDS together), as a centre's streams cost it;
3. 1,000 Compute-path requests in flight (results held back by the stand-in): the gateway's
   memory, threads and Redis connections before, at 1,000 and after.

`--scenarios relay` runs part 2 alone (the side channel's figures, for tuning the relay), then
counts the gateway's instructions per relayed chunk under callgrind (bench/relay_callgrind.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from bench import callgrind, compute_standin
from bench.processes import rss_megabytes, run_stats, start, system_seconds, tree_cpu_seconds
from compute_functions.inference import BATCH_SECONDS
from resource_server_async.compute.functions import INFERENCE
from scripts.processes import free_port, wait_for_http

if TYPE_CHECKING:
    import argparse

    from bench.run import Report, Target

CLUSTER = "bench-hpc"
MODEL = "bench-model"
ENDPOINT = "5b0b9c83-3c55-4a0e-9c55-6f1d5c2f3b11"
PROBE_ENDPOINT = "8d1f2e4a-7b6c-4d3e-a1f0-2c9b8e7d6a55"
SECRET = "bench-streaming-secret-0123456789"
SERVICE_LATENCY = 0.005  # seconds per stand-in call: a fast service, so the gateway shows
POLL_INTERVAL = 0.02
CONCURRENCY = (1, 32, 256)
# Enough tasks at each concurrency that /proc's 10 ms CPU ticks are a small part of the figure
# (40 tasks at concurrency 1 read in steps of 0.25 ms per task).
TASKS = {1: 200, 32: 640, 256: 768}
STREAMS = 40
LONG_CHUNKS = 200  # the marginal cost of a relayed chunk: LONG_STREAMS of these against STREAMS
LONG_STREAMS = 20
IN_FLIGHT = 1000
# The inference function's streams of the fake model: a fast model's token rate.
TOKEN_SECONDS = 0.01
MODEL_STREAMS = 20
MODEL_SHORT, MODEL_LONG = 20, 200
# BENCH_COMPUTE_DATABASE_URL: another name, for two runs on one machine (the bench drops it).
DATABASE = os.environ.get(
    "BENCH_COMPUTE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gateway_bench_compute"
)
IDLE_SECONDS = 10.0  # the gateway left alone after its warm-up, before the sweep
BUDGET_TASK_MS = 1.0
BUDGET_CHUNK_MS = 0.05
BUDGET_RELAY_P50_MS = 1.0
BUDGET_INFLIGHT_KB = 50.0


def fixtures(workdir: Path, backend_port: int) -> Path:
    """A Globus Compute cluster with two models: the inference function and the relay probe."""
    cluster = {
        "model": "resource_server_async.cluster",
        "pk": 1,
        "fields": {
            "cluster_name": CLUSTER,
            "cluster_adapter": "resource_server_async.clusters.globus_compute.GlobusComputeCluster",
            "frameworks": ["vllm"],
            "openai_endpoints": ["chat/completions"],
            # No scheduler behind the stand-in: /jobs comes from the endpoints' status.
            "config": {"jobs_from": "endpoints"},
        },
    }
    rows: list[dict[str, Any]] = [cluster]
    for pk, (model, endpoint, function) in enumerate(
        [
            (MODEL, ENDPOINT, INFERENCE.local_uuid),
            ("probe-model", PROBE_ENDPOINT, compute_standin.PROBE_FUNCTION),
        ],
        start=1,
    ):
        rows.append(
            {
                "model": "resource_server_async.endpoint",
                "pk": pk,
                "fields": {
                    "endpoint_slug": f"{CLUSTER}-vllm-{model}",
                    "cluster": CLUSTER,
                    "framework": "vllm",
                    "model": model,
                    "endpoint_adapter": (
                        "resource_server_async.endpoints.globus_compute.GlobusComputeEndpoint"
                    ),
                    "config": {
                        "api_port": backend_port,
                        "endpoint_uuid": endpoint,
                        "function_uuid": function,
                    },
                },
            }
        )
    path = workdir / "compute_fixtures.json"
    path.write_text(json.dumps(rows))
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def proc_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def redis_connections(pid: int) -> int:
    """TCP connections of `pid` to port 6379 (its sockets matched against /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].endswith(":18EB") and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


class Driver:
    """The caller: aiohttp on the driver's core, one session for all requests."""

    def __init__(self, target: Target) -> None:
        self.url = (
            f"http://127.0.0.1:{target.port}/resource_server/{CLUSTER}/vllm/v1/chat/completions"
        )
        self.headers = {"Authorization": target.auth, "Content-Type": "application/json"}

    async def chat(self, http: aiohttp.ClientSession, model: str = MODEL) -> float:
        body = {"model": model, "messages": [{"role": "user", "content": "hello bench"}]}
        started = time.perf_counter()
        async with http.post(self.url, json=body, headers=self.headers) as answer:
            await answer.read()
            if answer.status != 200:
                raise RuntimeError(f"gateway answered {answer.status}: {await answer.text()}")
        return time.perf_counter() - started

    async def probe_stream(self, http: aiohttp.ClientSession, chunks: int = 0) -> list[float]:
        """Relay delays (s) of one probe stream: receipt wall time minus the stamped POST start.
        `chunks`: how many the probe sends (its own default when 0)."""
        body: dict[str, Any] = {
            "model": "probe-model",
            "messages": [{"role": "user", "content": "probe"}],
            "stream": True,
        }
        if chunks:
            body["max_tokens"] = chunks
        delays = []
        async with http.post(self.url, json=body, headers=self.headers) as answer:
            if answer.status != 200:
                raise RuntimeError(f"gateway answered {answer.status}: {await answer.text()}")
            async for raw in answer.content:
                received = time.time()
                line = raw.decode().strip()
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    raise RuntimeError(f"the stream failed: {event['error']}")
                if not event.get("choices"):
                    continue
                content = event["choices"][0]["delta"].get("content") or ""
                if content.startswith("t="):
                    delays.append(received - float(content[2:]))
        return delays

    async def model_stream(self, http: aiohttp.ClientSession, chunks: int, delay: float) -> int:
        """A stream of the fake model through the real inference function (which batches the
        lines that arrive within its BATCH_SECONDS into one POST): content chunks received."""
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "tokens"}],
            "stream": True,
            "fake": {"chunks": chunks, "chunk_delay": delay},
        }
        received = 0
        async with http.post(self.url, json=body, headers=self.headers) as answer:
            if answer.status != 200:
                raise RuntimeError(f"gateway answered {answer.status}: {await answer.text()}")
            async for raw in answer.content:
                if raw.startswith(b"data: {") and b'"content"' in raw:
                    received += 1
        return received


async def _concurrent(driver: Driver, concurrency: int, total: int) -> list[float]:
    latencies: list[float] = []
    queue = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency + 8)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for _ in queue:
                latencies.append(await driver.chat(http))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def _direct_model(port: int, count: int) -> float:
    """p50 of the function's own call: the fake model directly."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello bench"}]}
    times = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            started = time.perf_counter()
            async with http.post(url, json=body) as answer:
                await answer.read()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def idle(target: Target, report: Report) -> None:
    """What the warmed-up gateway spends with no request at all: its own figure, beside the
    per-task ones (which include the idle work of the time they take, nothing subtracted)."""
    assert target.pid is not None
    asyncio.run(_concurrent(Driver(target), 4, 20))  # sign-in, connections, caches warm
    time.sleep(1.0)  # the last requests' accounting done
    cpu, runs = run_stats(target.pid)
    time.sleep(IDLE_SECONDS)
    cpu_after, runs_after = run_stats(target.pid)
    report.add(
        "compute idle: gateway CPU, wake-ups",
        f"{(cpu_after - cpu) * 1000 / IDLE_SECONDS:.2f} ms/s",
        f"{(runs_after - runs) / IDLE_SECONDS:.1f}/s",
        f"no request for {IDLE_SECONDS:g} s (all its threads, /proc schedstat)",
    )


def non_streaming(target: Target, standin: str, backend_port: int, report: Report) -> None:
    """Each concurrency's CPU per task, with what it is made of: its kernel part, the times
    the gateway's threads were woken (each a cold start of the caches at low load) and the
    status polls, per task."""
    assert target.pid is not None
    driver = Driver(target)
    asyncio.run(_concurrent(driver, 4, 20))  # sign-in, connections, caches warm
    floor = 2 * SERVICE_LATENCY + asyncio.run(_direct_model(backend_port, 30))
    for concurrency in CONCURRENCY:
        total = TASKS[concurrency]
        cpu, kernel = tree_cpu_seconds(target.pid), tree_cpu_seconds(target.pid, system_seconds)
        _, runs = run_stats(target.pid)
        polls = _polls(standin)
        started = time.perf_counter()
        latencies = asyncio.run(_concurrent(driver, concurrency, total))
        seconds = time.perf_counter() - started
        cpu_ms = (tree_cpu_seconds(target.pid) - cpu) * 1000 / total
        kernel_ms = (tree_cpu_seconds(target.pid, system_seconds) - kernel) * 1000 / total
        wakes = (run_stats(target.pid)[1] - runs) / total
        polled = (_polls(standin) - polls) / total
        p50 = statistics.median(latencies)
        added = (p50 - floor) * 1000
        report.add(
            f"compute c={concurrency}: CPU/task, tasks/s",
            f"{cpu_ms:.3f} ms",
            f"{total / seconds:.0f}/s",
            f"p50 {p50 * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
            f"added {added:.1f} ms over {floor * 1000:.1f} ms; per task: {kernel_ms:.3f} ms "
            f"in the kernel, {wakes:.1f} wake-ups, {polled:.2f} status calls",
        )
        report.check(
            f"compute c={concurrency}", "gateway CPU ≤ 1 ms/task", cpu_ms, BUDGET_TASK_MS, "ms"
        )


async def _streams(driver: Driver, count: int, chunks: int = 0) -> list[float]:
    delays: list[float] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            delays += await driver.probe_stream(http, chunks)
    return delays


def _polls(standin: str) -> int:
    """Status calls the stand-in has answered so far."""
    with urllib.request.urlopen(f"{standin}/standin/health", timeout=5) as answer:
        return int(json.load(answer)["counts"].get("batch_status", 0))


def _stream_run(
    target: Target, standin: str, count: int, chunks: int
) -> tuple[list[float], float, float, float]:
    """Delays of `count` streams of `chunks`; the gateway's CPU (s), its kernel part (s) and
    the status polls, per stream."""
    assert target.pid is not None
    polls, cpu, kernel = _polls(standin), tree_cpu_seconds(target.pid), system_seconds(target.pid)
    delays = asyncio.run(_streams(Driver(target), count, chunks))
    cpu_s = tree_cpu_seconds(target.pid) - cpu
    kernel_s = system_seconds(target.pid) - kernel
    if len(delays) != count * chunks:
        raise RuntimeError(f"{len(delays)} chunks arrived of {count * chunks}")
    return delays, cpu_s / count, kernel_s / count, (_polls(standin) - polls) / count


def streaming(tag: str, target: Target, standin: str, report: Report) -> None:
    asyncio.run(_streams(Driver(target), 3))
    short = compute_standin.PROBE_CHUNKS
    delays, short_cpu, short_kernel, short_polls = _stream_run(target, standin, STREAMS, short)
    _, long_cpu, long_kernel, long_polls = _stream_run(target, standin, LONG_STREAMS, LONG_CHUNKS)
    # What one more relayed chunk costs: the streams' fixed part (submit, result) cancels out;
    # the polls made while the longer streams ran do not, and are shown.
    per_chunk = (long_cpu - short_cpu) * 1000 / (LONG_CHUNKS - short)
    kernel_per_chunk = (long_kernel - short_kernel) * 1000 / (LONG_CHUNKS - short)
    whole = short_cpu * 1000 / short
    p50, p99 = percentile(delays, 0.5) * 1000, percentile(delays, 0.99) * 1000
    report.add(
        f"compute stream 20 chunks ({tag}): relay p50/p99",
        f"{p50:.2f} ms",
        f"{p99:.2f} ms",
        f"CPU {per_chunk:.3f} ms per extra chunk, {kernel_per_chunk:.3f} of it in the kernel "
        f"({LONG_CHUNKS} vs {short} chunks; "
        f"{long_polls:.1f} vs {short_polls:.1f} result polls/stream); whole 20-chunk stream "
        f"{short_cpu * 1000:.2f} ms = {whole:.3f} ms/chunk",
    )
    report.check(f"stream relay ({tag})", "relay p50 ≤ 1 ms", p50, BUDGET_RELAY_P50_MS, "ms")
    report.check(
        f"stream chunk ({tag})", "CPU ≤ 0.05 ms/extra chunk", per_chunk, BUDGET_CHUNK_MS, "ms"
    )


async def _model_streams(driver: Driver, count: int, chunks: int) -> int:
    connector = aiohttp.TCPConnector(limit=count + 8)
    async with aiohttp.ClientSession(connector=connector) as http:
        tallies = await asyncio.gather(
            *(driver.model_stream(http, chunks, TOKEN_SECONDS) for _ in range(count))
        )
    return sum(tallies)


def model_streaming(tag: str, target: Target, report: Report) -> None:
    """CPU per relayed chunk as a centre's streams cost it: the real inference function, one
    token every TOKEN_SECONDS (the function POSTs what arrived within its batch interval)."""
    assert target.pid is not None
    driver = Driver(target)
    asyncio.run(_model_streams(driver, 2, 5))
    spent = {}
    for chunks in (MODEL_SHORT, MODEL_LONG):
        cpu = tree_cpu_seconds(target.pid)
        received = asyncio.run(_model_streams(driver, MODEL_STREAMS, chunks))
        spent[chunks] = tree_cpu_seconds(target.pid) - cpu
        if received < MODEL_STREAMS * chunks:
            raise RuntimeError(f"{received} chunks arrived of {MODEL_STREAMS * chunks}")
    extra = MODEL_STREAMS * (MODEL_LONG - MODEL_SHORT)
    per_chunk = (spent[MODEL_LONG] - spent[MODEL_SHORT]) * 1000 / extra
    report.add(
        f"compute stream, inference function, a token per {TOKEN_SECONDS * 1000:g} ms ({tag})",
        f"{per_chunk:.3f} ms",
        "CPU per extra chunk",
        f"{MODEL_STREAMS} streams at once, {MODEL_LONG} against {MODEL_SHORT} chunks; the "
        f"function's POSTs carry what arrived within {BATCH_SECONDS * 1000:g} ms",
    )
    report.check(
        f"model stream chunk ({tag})", "CPU ≤ 0.05 ms/chunk", per_chunk, BUDGET_CHUNK_MS, "ms"
    )


async def _hold(driver: Driver, count: int, pid: int, standin: str) -> dict[str, float]:
    """Start `count` requests whose results the stand-in holds; sample the gateway at the top."""
    connector = aiohttp.TCPConnector(limit=count + 8)
    timeout = aiohttp.ClientTimeout(total=300)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        aiohttp.ClientSession(timeout=timeout) as control,
    ):
        tasks = [asyncio.ensure_future(driver.chat(http)) for _ in range(count)]

        async def held() -> int:
            async with control.get(f"{standin}/standin/health") as answer:
                return int((await answer.json())["tasks"])

        for _ in range(600):  # at most two minutes for all of them to be submitted
            if await held() >= count:
                break
            await asyncio.sleep(0.2)
        top = {
            "held": float(await held()),
            "rss": rss_megabytes(pid),
            "threads": float(proc_threads(pid)),
            "redis": float(redis_connections(pid)),
        }
        async with control.post(f"{standin}/standin/release") as answer:
            await answer.read()
        await asyncio.gather(*tasks)
    return top


def in_flight(tag: str, target: Target, standin: str, report: Report) -> None:
    assert target.pid is not None
    pid = target.pid
    driver = Driver(target)
    before = (rss_megabytes(pid), proc_threads(pid), redis_connections(pid))
    urllib.request.urlopen(
        urllib.request.Request(f"{standin}/standin/hold", method="POST"), timeout=5
    ).read()
    top = asyncio.run(_hold(driver, IN_FLIGHT, pid, standin))
    after = (rss_megabytes(pid), proc_threads(pid), redis_connections(pid))
    per_request_kb = (top["rss"] - before[0]) * 1024 / IN_FLIGHT
    report.add(
        f"compute {IN_FLIGHT} in flight ({tag}): RSS MB, threads, Redis conns",
        f"before {before[0]:.0f} MB, {before[1]} thr, {before[2]} redis",
        f"at {top['held']:.0f}: {top['rss']:.0f} MB, {top['threads']:.0f} thr, "
        f"{top['redis']:.0f} redis",
        f"{per_request_kb:.1f} kB/request; after {after[0]:.0f} MB, {after[1]} thr, "
        f"{after[2]} redis",
    )
    report.check(
        f"in flight ({tag})", "memory ≤ 50 kB/request", per_request_kb, BUDGET_INFLIGHT_KB, "kB"
    )


def gateway_overrides(standin: str, gateway_port: int) -> dict[str, str]:
    """A gateway's settings against the stand-in, its side channel on `gateway_port`."""
    return {
        **compute_standin.gateway_env(standin),
        "STREAMING_SERVER_HOST": "127.0.0.1",
        "STREAMING_SERVER_PORT": str(gateway_port),
        "STREAMING_SERVER_PROTOCOL": "http",
        "INTERNAL_STREAMING_SECRET": SECRET,
        "COMPUTE_POLL_INTERVAL": str(POLL_INTERVAL),
        "COMPUTE_SUBMIT_QUEUE": str(IN_FLIGHT + 100),
        "COMPUTE_RESULT_TIMEOUT": "300",
    }


@contextmanager
def standin_process(workdir: Path) -> Iterator[str]:
    """The Compute stand-in on the driver's core; yields its URL."""
    from bench.run import DRIVER_CORE

    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    standin_env = {
        **os.environ,
        "INFERENCE_API_BASE_URL": "http://127.0.0.1:{api_port}",
        "INTERNAL_STREAMING_SECRET": SECRET,
    }
    process = start(
        "compute-standin",
        compute_standin.command(
            port, [ENDPOINT, PROBE_ENDPOINT], latency=SERVICE_LATENCY, workers=128
        ),
        standin_env,
        workdir / "standin.log",
        DRIVER_CORE,
    )
    standin = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{standin}/standin/health")
        yield standin
    finally:
        process.stop()


@contextmanager
def compute_gateway(
    workdir: Path,
    store: str,
    backend_port: int,
    standin: str,
    env: dict[str, str] | None = None,
    **options: Any,
) -> Iterator[Target]:
    """One gateway worker whose catalog's Globus Compute endpoints are served by the stand-in
    (`env`: more of its environment; `options`: bench.run.gateway's, such as a callgrind
    command prefix)."""
    from bench.run import gateway

    gateway_port = free_port()
    overrides = {**gateway_overrides(standin, gateway_port), **(env or {})}
    sub = workdir / store
    sub.mkdir(exist_ok=True)
    with gateway(
        sub,
        store,
        backend_port,
        overrides,
        database=DATABASE if store == "postgres" else "",
        fixtures=fixtures(sub, backend_port),
        port=gateway_port,
        **options,
    ) as target:
        yield target


def instructions_per_task(workdir: Path, backend_port: int, standin: str, count: int) -> None:
    """Instructions per task of the gateway (all its threads) under callgrind, at concurrency
    1 and 32: a figure the shared machine's load does not move."""
    outdir = workdir / "callgrind"
    outdir.mkdir(parents=True, exist_ok=True)
    with compute_gateway(
        workdir,
        "postgres",
        backend_port,
        standin,
        command_prefix=callgrind.prefix(outdir),
        startup_seconds=callgrind.STARTUP_SECONDS,
    ) as target:
        assert target.pid is not None
        driver = Driver(target)
        body = json.dumps(
            {"model": MODEL, "messages": [{"role": "user", "content": "hello bench"}]}
        ).encode()
        path = driver.url.split(str(target.port), 1)[1]
        for concurrency in (1, 32):
            before = callgrind.total_instructions(outdir, target.pid)
            tasks = count // concurrency * concurrency
            total = (
                callgrind.instructions_per_request(
                    outdir,
                    target.pid,
                    target.port,
                    path,
                    body,
                    list(driver.headers.items()),
                    count=tasks,
                    concurrency=concurrency,
                )
                * tasks
            )
            print(
                f"  compute c={concurrency}: instructions/task (callgrind, {tasks} tasks)"
                f" {(total - before) / tasks / 1e6:.2f} M",
                flush=True,
            )


def bench(args: argparse.Namespace, workdir: Path, backend_port: int, report: Report) -> None:
    relay_only = "compute" not in args.scenarios  # --scenarios relay: the streaming part
    with standin_process(workdir) as standin:
        for store, tag in (("postgres", "Redis"), ("sqlite", "in-process")):
            with compute_gateway(workdir, store, backend_port, standin) as target:
                print(f"\ncompute scenario, {tag} ({store})", flush=True)
                if store == "postgres" and not relay_only:
                    idle(target, report)
                    non_streaming(target, standin, backend_port, report)
                streaming(tag, target, standin, report)
                model_streaming(tag, target, report)
                if store == "postgres" and not relay_only:
                    in_flight(tag, target, standin, report)
        if relay_only and args.callgrind_requests and callgrind.available():
            from bench import relay_callgrind

            relay_callgrind.bench(workdir / "callgrind", standin, backend_port, report)
    if relay_only:
        return
    from bench import compute_streams

    print(f"\nopen streams, {compute_streams.OPEN_STREAMS} (direct path)", flush=True)
    compute_streams.bench(workdir / "open_streams", report)
    report.notes.append(
        f"compute: stand-in at {SERVICE_LATENCY * 1000:g} ms per service call, "
        f"COMPUTE_POLL_INTERVAL={POLL_INTERVAL:g} s (production default 0.5 s); 'added' is the "
        "client's p50 minus the stand-in's floor (two service calls + the function's model call "
        "measured directly), so it includes waiting for the next poll (≤ one interval)."
    )


def append_section(report: Report, args: argparse.Namespace) -> None:
    """A dated section at the end of --output (the scenario run alone)."""
    from bench.run import append_section as append

    relay = args.scenarios == ["relay"]
    append(
        report,
        args,
        f"Globus Compute {'side-channel relay' if relay else 'path'} (stand-in)",
        f"python -m bench.run --scenarios {'relay' if relay else 'compute'}",
        (__doc__ or "").split("\n\n", 1)[1].strip().replace("\n", " "),
        "detail",
        columns=("figure", "figure"),
    )


def quick() -> None:
    """`python -m bench.compute`: only the non-streaming part (PostgreSQL + Redis), and with
    `--streams` the polls a stream's task gets, quickly, while iterating on the executor."""
    import argparse
    import tempfile

    from bench.run import DRIVER_CORE, Report, fake_backend

    parser = argparse.ArgumentParser(description=quick.__doc__)
    parser.add_argument("--streams", action="store_true", help="also 20- vs 200-chunk streams")
    parser.add_argument("--repeats", type=int, default=1, help="the concurrency sweep, n times")
    parser.add_argument(
        "--callgrind",
        type=int,
        default=0,
        help="instead, count the instructions of this many tasks (callgrind)",
    )
    options = parser.parse_args()
    os.sched_setaffinity(0, {DRIVER_CORE})
    if options.callgrind:
        with (
            tempfile.TemporaryDirectory(prefix="compute-callgrind-") as tmp,
            fake_backend(Path(tmp)) as backend_port,
            standin_process(Path(tmp)) as standin,
        ):
            instructions_per_task(Path(tmp), backend_port, standin, options.callgrind)
        return
    report = Report()
    with (
        tempfile.TemporaryDirectory(prefix="compute-bench-") as tmp,
        fake_backend(Path(tmp)) as backend_port,
        standin_process(Path(tmp)) as standin,
        compute_gateway(Path(tmp), "postgres", backend_port, standin) as target,
    ):
        idle(target, report)
        for _ in range(options.repeats):
            non_streaming(target, standin, backend_port, report)
        if options.streams:
            streaming("Redis", target, standin, report)
    for tag, line, measured, met in report.budget:
        print(f"  {tag:<24} {line:<28} {measured:>12}  {'yes' if met else 'NO'}")


if __name__ == "__main__":
    quick()
