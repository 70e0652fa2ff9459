"""The noisy-neighbour scenario (`bench.run --scenarios fair_share`): fair share on vs off.

A model server that serves at most 8 chat requests at once, 50 ms each (tests/fake_backend.py
--capacity 8 --service-seconds 0.05), behind one gateway with two endpoints on two such servers:
`fair-on` declares max_concurrent = 8 (the fair-share queue), `fair-off` declares nothing (the
requests pile onto the server's own queue). User A keeps 64 requests in flight; user B sends one
at a time. Reported: B's median and p99 alone and under A's flood, on each endpoint, and A's
throughput. The clients run in this process (core 1, with the servers); the gateway on core 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

CAPACITY = 8
SERVICE_SECONDS = 0.05
FLOOD = 64
CLUSTER, FRAMEWORK = "bench", "vllm"
IDLE_REQUESTS = 40  # B alone
LOADED_REQUESTS = 40  # B under the flood, on each endpoint
FLOOD_WARMUP = 2 * FLOOD  # answers to A before B starts measuring


@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000

    def __str__(self) -> str:
        return f"median {self.median_ms:.1f} ms, p99 {self.p99_ms:.1f} ms"


@dataclass
class Outcome:
    b: Latencies
    a_per_second: float
    a_refused: int


def _fixtures(workdir: Path, ports: dict[str, int]) -> Path:
    rows: list[dict[str, Any]] = [
        {
            "model": "resource_server_async.cluster",
            "pk": 1,
            "fields": {
                "cluster_name": CLUSTER,
                "cluster_adapter": "resource_server_async.clusters.direct_api.DirectAPICluster",
                "frameworks": [FRAMEWORK],
                "openai_endpoints": ["chat/completions"],
                "config": {},
            },
        }
    ]
    for pk, (model, port) in enumerate(ports.items(), start=1):
        rows.append(
            {
                "model": "resource_server_async.endpoint",
                "pk": pk,
                "fields": {
                    "endpoint_slug": f"{CLUSTER}-{FRAMEWORK}-{model}",
                    "cluster": CLUSTER,
                    "framework": FRAMEWORK,
                    "model": model,
                    "endpoint_adapter": (
                        "resource_server_async.endpoints.direct_api.DirectAPIEndpoint"
                    ),
                    "max_concurrent": CAPACITY if model == "fair-on" else 0,
                    "config": {"api_url": f"http://127.0.0.1:{port}", "api_request_timeout": 60},
                },
            }
        )
    path = workdir / "fair_share_fixtures.json"
    path.write_text(json.dumps(rows))
    return path


@contextmanager
def _capped_backend(workdir: Path, name: str) -> Iterator[int]:
    from bench.processes import python, start
    from bench.run import DRIVER_CORE
    from scripts.processes import free_port, wait_for_http

    port = free_port()
    command = [python(), "-m", "tests.fake_backend", "--port", str(port), "--model", name]
    command += ["--capacity", str(CAPACITY), "--service-seconds", str(SERVICE_SECONDS)]
    process = start(name, command, dict(os.environ), workdir / f"{name}.log", DRIVER_CORE)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models")
        yield port
    finally:
        process.stop()


@contextmanager
def _gateway(workdir: Path, store: str, ports: dict[str, int]) -> Iterator[tuple[int, str, str]]:
    """One gateway worker (bench.run's) with both endpoints; (port, A's key, B's key)."""
    from bench.run import DEFAULT_DATABASE, gateway, manage

    database = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE) + "_fair_share"
    overrides = {"LIMITS_REDIS_PREFIX": f"bench-fair:{time.time_ns()}:"}
    fixtures = _fixtures(workdir, ports)
    with gateway(workdir, store, 0, overrides, database, fixtures) as target:
        key_b = manage(target.env, "create_api_key", "--name", "b", "--quiet").strip()
        yield target.port, target.auth.removeprefix("Bearer "), key_b.splitlines()[-1]


async def _scenario(port: int, key_a: str, key_b: str, model: str) -> tuple[Latencies, Outcome]:
    url = f"http://127.0.0.1:{port}/resource_server/{CLUSTER}/{FRAMEWORK}/v1/chat/completions"
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    connector = aiohttp.TCPConnector(limit=FLOOD + 8)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(key: str) -> int:
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                return answer.status

        async def b_requests(count: int) -> Latencies:
            found = Latencies()
            for _ in range(count):
                started = time.perf_counter()
                status = await post(key_b)
                found.seconds.append(time.perf_counter() - started)
                assert status == 200, status
            return found

        await b_requests(5)  # warm: connections, the key's cache
        idle = await b_requests(IDLE_REQUESTS)
        answered, refused, running = 0, 0, True
        warm = asyncio.Event()  # the flood fills the server and its queue before B measures

        async def lane() -> None:
            nonlocal answered, refused
            while running:
                if await post(key_a) == 200:
                    answered += 1
                    if answered >= FLOOD_WARMUP:
                        warm.set()
                else:
                    refused += 1

        lanes = [asyncio.create_task(lane()) for _ in range(FLOOD)]
        await warm.wait()
        start, since = answered, time.perf_counter()
        loaded = await b_requests(LOADED_REQUESTS)
        a_rate = (answered - start) / (time.perf_counter() - since)
        running = False
        await asyncio.gather(*lanes)
    return idle, Outcome(loaded, a_rate, refused)


def bench(args: argparse.Namespace, workdir: Path, report: Any) -> None:
    """Both endpoints, in turn, through the same gateway (per store in --stores)."""
    print(
        f"\n== fair share: B one at a time while A keeps {FLOOD} in flight, a server of "
        f"{CAPACITY} x {SERVICE_SECONDS * 1000:.0f} ms; max_concurrent={CAPACITY} vs none",
        flush=True,
    )
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    for store in stores:
        (workdir / store).mkdir(parents=True)
        with contextlib.ExitStack() as stack:
            ports = {
                name: stack.enter_context(_capped_backend(workdir / store, name))
                for name in ("fair-on", "fair-off")
            }
            port, key_a, key_b = stack.enter_context(_gateway(workdir / store, store, ports))
            results = {model: asyncio.run(_scenario(port, key_a, key_b, model)) for model in ports}
        tag = "Redis" if store == "postgres" else "in-process"
        idle = results["fair-on"][0]
        on, off = results["fair-on"][1], results["fair-off"][1]
        report.add(f"[fair share, {tag}] B alone", "", str(idle), "the idle latency")
        report.add(
            f"[fair share, {tag}] B under A's flood",
            str(off.b),
            str(on.b),
            f"median {off.b.median_ms / idle.median_ms:.2f}x idle off, "
            f"{on.b.median_ms / idle.median_ms:.2f}x on; p99 "
            f"{off.b.p99_ms / idle.p99_ms:.2f}x off, {on.b.p99_ms / idle.p99_ms:.2f}x on",
        )
        report.add(
            f"[fair share, {tag}] A's throughput (server max {CAPACITY / SERVICE_SECONDS:.0f}/s)",
            f"{off.a_per_second:.0f}/s",
            f"{on.a_per_second:.0f}/s",
            f"{on.a_per_second / off.a_per_second:.2f}x; A refused: {off.a_refused} off, "
            f"{on.a_refused} on",
        )
        report.check(
            f"fair share ({tag})",
            "B's median under the flood <= 1.5x idle, fair share on",
            on.b.median_ms / idle.median_ms,
            1.5,
            "x idle",
        )


def append_section(report: Any, args: argparse.Namespace) -> None:
    """A dated section at the end of --output, the rest of the file kept."""
    from bench import run

    run.append_section(
        report,
        args,
        "Fair share: the noisy neighbour",
        f"python -m bench.run --scenarios fair_share --stores {args.stores}",
        f"Two model servers that serve at most {CAPACITY} chat requests at once, "
        f"{SERVICE_SECONDS * 1000:.0f} ms each (tests/fake_backend.py --capacity), behind one "
        f"gateway worker (core 0): endpoint `fair-on` declares max_concurrent = {CAPACITY}, "
        f"`fair-off` nothing. User A keeps {FLOOD} requests in flight; user B sends "
        f"{LOADED_REQUESTS} one at a time (after {IDLE_REQUESTS} alone for the idle figure). "
        "Clients and servers share core 1. Columns: fair share off, on.",
        "comparison",
    )
