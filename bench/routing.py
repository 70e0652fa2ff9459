"""The routing scenario (`--scenarios routing`): one model on two clusters, one server 5x slower.

One gateway worker serves the model from two direct clusters, "fast" and "slow" (fake backends
that wait FAST_DELAY and SLOW_DELAY seconds before each answer). The same requests, CONCURRENCY
at a time, go in the same run (a) to the federated route, where the gateway chooses by load and
latency, and (b) round-robin: alternately to each cluster-scoped route, as a client or a plain
balancer would. Reported: the share of each cluster (from `x-served-by`) and the p50 latency.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from bench.processes import Process, python, start
from scripts.processes import SERVING_OPTIONS, free_port, gateway_command, wait_for_http

if TYPE_CHECKING:
    from bench.run import Report

MODEL = "bench-model"
FAST_DELAY, SLOW_DELAY = 0.010, 0.050
CONCURRENCY = 8
CLUSTERS = {"fast": FAST_DELAY, "slow": SLOW_DELAY}
BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}).encode()


@dataclass
class Outcome:
    split: Counter[str]
    latencies: list[float]
    failures: int

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    def share(self, cluster: str) -> float:
        return 100 * self.split[f"{cluster}/vllm"] / max(1, sum(self.split.values()))


def fixtures(path: Path, ports: dict[str, int]) -> Path:
    rows: list[dict[str, object]] = []
    for pk, (cluster, port) in enumerate(ports.items(), start=1):
        rows.append(
            {
                "model": "resource_server_async.cluster",
                "pk": pk,
                "fields": {
                    "cluster_name": cluster,
                    "cluster_adapter": "resource_server_async.clusters.direct_api.DirectAPICluster",
                    "frameworks": ["vllm"],
                    "openai_endpoints": ["chat/completions"],
                    "config": {},
                },
            }
        )
        rows.append(
            {
                "model": "resource_server_async.endpoint",
                "pk": pk,
                "fields": {
                    "endpoint_slug": f"{cluster}-vllm-{MODEL}",
                    "cluster": cluster,
                    "framework": "vllm",
                    "model": MODEL,
                    "endpoint_adapter": (
                        "resource_server_async.endpoints.direct_api.DirectAPIEndpoint"
                    ),
                    "config": {"api_url": f"http://127.0.0.1:{port}"},
                },
            }
        )
    path.write_text(json.dumps(rows))
    return path


@contextmanager
def servers(
    workdir: Path, env: dict[str, str], cores: tuple[int, int]
) -> Iterator[tuple[int, str]]:
    """The two backends and one gateway worker: (gateway port, its API key)."""
    from bench.run import manage

    gateway_core, driver_core = cores
    with ExitStack() as stack:
        ports: dict[str, int] = {}
        for cluster, delay in CLUSTERS.items():
            port = free_port()
            command = [python(), "-m", "tests.fake_backend", "--port", str(port)]
            command += ["--model", MODEL, "--delay", str(delay)]
            backend = start(cluster, command, env, workdir / f"{cluster}.log", driver_core)
            stack.callback(Process.stop, backend)
            wait_for_http(f"http://127.0.0.1:{port}/v1/models")
            ports[cluster] = port
        manage(env, "migrate", "--no-input", "-v0")
        manage(env, "loaddata", str(fixtures(workdir / "routing_fixtures.json", ports)))
        key = manage(env, "create_api_key", "--name", "bench", "--quiet").strip().splitlines()[-1]
        port = free_port()
        command = gateway_command(port, *SERVING_OPTIONS, "--log-level", "warning")
        gateway = start("gateway", command, env, workdir / "gateway.log", gateway_core)
        stack.callback(Process.stop, gateway)
        wait_for_http(f"http://127.0.0.1:{port}/resource_server/health")
        yield port, key


def send(base: str, key: str, paths: list[str], count: int) -> Outcome:
    """POST the chat body `count` times, CONCURRENCY at a time, the n-th to paths[n % len]."""

    async def run() -> Outcome:
        split: Counter[str] = Counter()
        latencies: list[float] = []
        failures = 0
        numbers = iter(range(count))
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(base, headers=headers) as session:

            async def worker() -> None:
                nonlocal failures
                for n in numbers:
                    started = time.perf_counter()
                    async with session.post(paths[n % len(paths)], data=BODY) as answer:
                        await answer.read()
                        if answer.status != 200:
                            failures += 1
                            continue
                        latencies.append(time.perf_counter() - started)
                        split[answer.headers.get("x-served-by", "?")] += 1

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return Outcome(split, latencies, failures)

    return asyncio.run(run())


def compare(port: int, key: str, count: int) -> dict[str, Outcome]:
    """Load-aware (federated) and round-robin, alternated twice, the same count each."""
    base = f"http://127.0.0.1:{port}"
    federated = ["/resource_server/v1/chat/completions"]
    round_robin = [f"/resource_server/{c}/vllm/v1/chat/completions" for c in CLUSTERS]
    send(base, key, federated, 2 * CONCURRENCY)  # warm: states read, both servers timed
    runs: dict[str, list[Outcome]] = {"load-aware": [], "round-robin": []}
    for _ in range(2):
        runs["load-aware"].append(send(base, key, federated, count // 2))
        runs["round-robin"].append(send(base, key, round_robin, count // 2))
    return {
        name: Outcome(
            sum((o.split for o in outcomes), Counter()),
            [latency for o in outcomes for latency in o.latencies],
            sum(o.failures for o in outcomes),
        )
        for name, outcomes in runs.items()
    }


REQUESTS = 2000  # per policy, in two alternated halves


def bench(workdir: Path, report: Report) -> None:
    from bench.run import DRIVER_CORE, GATEWAY_CORE, gateway_env

    print(
        f"\n== routing: two clusters, one {SLOW_DELAY / FAST_DELAY:g}x slower; federated "
        f"(load-aware) vs round-robin, {REQUESTS} requests each at concurrency {CONCURRENCY}",
        flush=True,
    )
    env = gateway_env(workdir, "sqlite")
    with servers(workdir, env, (GATEWAY_CORE, DRIVER_CORE)) as (port, key):
        outcomes = compare(port, key, REQUESTS)
    for name, outcome in outcomes.items():
        report.add(
            f"routing: {name}",
            f"fast {outcome.share('fast'):.0f}% / slow {outcome.share('slow'):.0f}%",
            f"p50 {outcome.p50_ms:.1f} ms",
            f"{outcome.failures} failed",
        )
    aware, plain = outcomes["load-aware"], outcomes["round-robin"]
    report.notes.append(
        f"routing: the load-aware p50 is {aware.p50_ms / plain.p50_ms:.2f}x round-robin's "
        f"({aware.p50_ms:.1f} vs {plain.p50_ms:.1f} ms); "
        f"{aware.share('fast'):.0f}% of its requests went to the fast server"
    )


def append_section(report: Report, output: Path) -> None:
    """A dated section at the end of `output`, the rest of the file kept."""
    from bench.run import machine

    lines = [
        "",
        f"## Routing: load-aware vs round-robin, {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        "",
        f"Machine: {machine()}  ",
        "Command: `python -m bench.run --scenarios routing`",
        "",
        f"One gateway worker (core 0, SQLite) serving one model from two direct clusters whose "
        f"fake backends (core 1) wait {FAST_DELAY * 1000:g} ms (fast) and "
        f"{SLOW_DELAY * 1000:g} ms (slow) before answering. {REQUESTS} chat requests per policy "
        f"at concurrency {CONCURRENCY}, in two halves alternated with the other policy's: "
        "load-aware is the federated route (live state, requests in flight, latency); "
        "round-robin sends them alternately to the two cluster-scoped routes.",
        "",
        "| policy | split (x-served-by) | latency | failures |",
        "|---|---|---|---|",
        *[f"| {a.removeprefix('routing: ')} | {b} | {c} | {d} |" for a, b, c, d in report.rows],
        "",
        *[f"- {note}" for note in report.notes],
    ]
    existing = output.read_text() if output.exists() else "# Benchmark results\n"
    output.write_text(existing.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
    print(f"\nadded a section to {output}")
