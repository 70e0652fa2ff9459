"""`make bench`: the gateway's own cost, as ratios against calling the model server directly.

One gateway worker (uvicorn, pinned to core 0) proxies to the fake backend of tests/fake_backend.py
(pinned, with the load driver wrk, to core 1). Each scenario runs against the backend directly and
through the gateway in the same run, repeated; the median is reported. Gateway CPU time comes
from /proc/<pid>/stat. Results go to stdout and bench/RESULTS.md (`--output`). `--scenarios auth`
runs only the authentication scenario: whoami with a valid key vs random keys, concurrency 128.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import first_chunk
from bench.processes import ROOT, pinned, python, rss_megabytes, start, tree_cpu_seconds
from resource_server_async.auth.api_keys import KEY_LENGTH, KEY_PREFIX, LEGACY_KEY_LENGTH
from scripts import processes
from scripts.processes import SERVING_OPTIONS, free_port, gateway_command, wait_for_http

BENCH_DIR = ROOT / "bench"
MODEL = "bench-model"
CLUSTER, FRAMEWORK = "bench", "vllm"
CHAT_PATH = f"/resource_server/{CLUSTER}/{FRAMEWORK}/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark in a few words."}]
# The fake backend streams one content chunk per word of "Echo: <prompt>": 20 chunks.
STREAM_PROMPT = " ".join(f"word{i}" for i in range(19))
GATEWAY_CORE, DRIVER_CORE = 0, 1
WHOAMI_PATH = "/resource_server/whoami"
# The connection count of the flood measured in the hardening issue (item 3).
AUTH_CONNECTIONS = 128
SCENARIOS = (
    "proxy",
    "auth",
    "accounting",
    "fair_share",
    "routing",
    "admission",
    "batches",
    "dashboard",
    "compute",
    "relay",
    "streams",
    "stream_instructions",
    "cpu_profile",
)
# What `make bench` runs unless told; `accounting` starts two more gateways (records and
# metrics on vs off) and `routing` one with two backends (bench/routing.py): asked for by name.
DEFAULT_SCENARIOS = ("proxy", "auth", "compute", "cpu_profile")
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/gateway_bench"
# The production configuration against the same gateway without accounting (--scenarios
# accounting): the issue's budget for what records and metrics add.
ACCOUNTING = {
    "on": {"RECORDS_ENABLED": "true", "METRICS_ENABLED": "true"},
    "off": {"RECORDS_ENABLED": "false", "METRICS_ENABLED": "false"},
}
ACCOUNTING_BUDGET_MS = 0.05


@dataclass
class Run:
    """One wrk run: request count and latencies (µs); CPU seconds of the gateway if measured."""

    requests: int
    seconds: float
    p50_us: float
    p99_us: float
    failures: int
    gateway_cpu: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)  # by status, where the script counts

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass
class Target:
    name: str
    port: int
    path: str
    auth: str
    pid: int | None = None  # the proxy process, whose CPU time and memory are measured
    env: dict[str, str] = field(default_factory=dict)  # a gateway's environment


@dataclass
class Report:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # (target, budget line, measured, met?) for the gateway's own budget (issue text, DESIGN.md).
    budget: list[tuple[str, str, str, bool]] = field(default_factory=list)

    def check(self, tag: str, line: str, value: float, limit: float, unit: str) -> None:
        self.budget.append((tag, line, f"{value:.3f} {unit}", value <= limit))

    def add(self, scenario: str, direct: str, gateway: str, verdict: str) -> None:
        self.rows.append((scenario, direct, gateway, verdict))
        print(f"  {scenario:<48} {direct:>18} {gateway:>18}  {verdict}", flush=True)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk from Debian's packages ...", flush=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], check=False, stdout=subprocess.DEVNULL
        )
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is required: apt-get install wrk")
    return found


def body_file(directory: Path, name: str, stream: bool) -> Path:
    body: dict[str, object] = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}
    if stream:
        body["stream"] = True
        body["messages"] = [{"role": "user", "content": STREAM_PROMPT}]
    path = directory / f"{name}.json"
    path.write_text(json.dumps(body))
    return path


def wrk(
    target: Target,
    body: Path | None,
    connections: int,
    seconds: float,
    script: str = "post.lua",
    extra_env: dict[str, str] | None = None,
) -> Run:
    env = {**os.environ, "BENCH_BODY": str(body or ""), "BENCH_AUTH": target.auth}
    env.update(extra_env or {})
    command = pinned(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(BENCH_DIR / "wrk" / script),
            f"http://127.0.0.1:{target.port}{target.path}",
        ],
        DRIVER_CORE,
    )
    cpu_before = tree_cpu_seconds(target.pid) if target.pid else None
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    cpu_after = tree_cpu_seconds(target.pid) if target.pid else None
    match = re.search(r"^BENCH (\{.*\})$", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    data = json.loads(match.group(1))
    return Run(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_us=data["p50_us"],
        p99_us=data["p99_us"],
        failures=data["errors"] + data["non_2xx"],
        gateway_cpu=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        statuses={str(k): int(v) for k, v in data.get("statuses", {}).items()},
    )


def median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.rate)
    middle = ordered[len(ordered) // 2]
    return Run(
        requests=middle.requests,
        seconds=middle.seconds,
        p50_us=statistics.median(r.p50_us for r in runs),
        p99_us=statistics.median(r.p99_us for r in runs),
        failures=sum(r.failures for r in runs),
        gateway_cpu=middle.gateway_cpu,
        statuses={k: sum(r.statuses.get(k, 0) for r in runs) for r in runs for k in r.statuses},
    )


def repeated(target: Target, body: Path, connections: int, seconds: float, repeats: int) -> Run:
    wrk(target, body, connections, 1.0)  # warm up: connections, caches, JIT-free but lazy pools
    return median_run([wrk(target, body, connections, seconds) for _ in range(repeats)])


def cpu_ms_per_request(run: Run) -> float:
    assert run.gateway_cpu is not None
    return run.gateway_cpu / run.requests * 1000


@contextmanager
def fake_backend(workdir: Path, module: str = "tests.fake_backend") -> Iterator[int]:
    """A model server on the driver's core (`module`: one with --port that serves
    GET /v1/models, such as bench/stream_model.py); yields its port."""
    port = free_port()
    process = start(
        "backend",
        [python(), "-m", module, "--port", str(port)],
        dict(os.environ),
        workdir / "backend.log",
        DRIVER_CORE,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v1/models")
        yield port
    finally:
        process.stop()


def gateway_env(workdir: Path, store: str, database: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        {
            "GATEWAY_DEV_MODE": "1",
            "GATEWAY_DATA_DIR": str(workdir / "data"),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "inference_gateway.settings",
        }
    )
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    if store == "postgres":
        env["DATABASE_URL"] = database or os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
        env["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    return env


def prepare_postgres(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def manage(env: dict[str, str], *args: str) -> str:
    return processes.manage(*args, env=env).stdout


def write_fixtures(workdir: Path, backend_port: int) -> Path:
    rows = [
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
        },
        {
            "model": "resource_server_async.endpoint",
            "pk": 1,
            "fields": {
                "endpoint_slug": f"{CLUSTER}-{FRAMEWORK}-{MODEL}",
                "cluster": CLUSTER,
                "framework": FRAMEWORK,
                "model": MODEL,
                "endpoint_adapter": "resource_server_async.endpoints.direct_api.DirectAPIEndpoint",
                "config": {
                    "api_url": f"http://127.0.0.1:{backend_port}",
                    "api_request_timeout": 30,
                },
            },
        },
    ]
    path = workdir / "bench_fixtures.json"
    path.write_text(json.dumps(rows))
    return path


@contextmanager
def gateway(
    workdir: Path,
    store: str,
    backend_port: int,
    overrides: dict[str, str] | None = None,
    database: str = "",
    fixtures: Path | None = None,
    port: int = 0,
    command_prefix: Sequence[str] = (),
    startup_seconds: float = 30.0,
    server: str = "inference_gateway.serve",
) -> Iterator[Target]:
    """A gateway of one worker on its own database; `command_prefix` runs it under another
    program (bench/callgrind.py's valgrind)."""
    env = {**gateway_env(workdir, store, database), **(overrides or {})}
    if store == "postgres":
        prepare_postgres(env["DATABASE_URL"])
    manage(env, "migrate", "--no-input", "-v0")
    manage(env, "loaddata", str(fixtures or write_fixtures(workdir, backend_port)))
    key = manage(env, "create_api_key", "--name", "bench", "--quiet").strip().splitlines()[-1]
    port = port or free_port()
    process = start(
        "gateway",
        [
            *command_prefix,
            *gateway_command(port, *SERVING_OPTIONS, "--log-level", "warning", server=server),
        ],
        env,
        workdir / f"gateway-{store}.log",
        GATEWAY_CORE,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/resource_server/health", startup_seconds)
        yield Target("gateway", port, CHAT_PATH, f"Bearer {key}", process.pid, env)
    finally:
        process.stop()


def fmt_rate(run: Run) -> str:
    return f"{run.rate:,.0f}/s p99 {run.p99_us / 1000:.2f} ms"


def soak_memory(target: Target, body: Path, seconds: float) -> tuple[float, float, float]:
    """RSS (MB) before, lowest and highest while wrk drives `seconds` of load at concurrency 32."""
    pid = target.pid
    assert pid is not None
    idle = rss_megabytes(pid)
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(1.0):
            samples.append(rss_megabytes(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    wrk(target, body, 32, seconds)
    stop.set()
    thread.join()
    return idle, min(samples or [idle]), max(samples or [idle])


def bench_target(
    tag: str,
    target: Target,
    args: argparse.Namespace,
    workdir: Path,
    backend_port: int,
    report: Report,
) -> None:
    """Every scenario against `target` and against the backend directly, in the same run."""
    direct = Target("direct", backend_port, "/v1/chat/completions", "")
    plain = body_file(workdir, "chat", stream=False)
    stream = body_file(workdir, "stream", stream=True)
    for connections in (1, 32, 64):
        d = repeated(direct, plain, connections, args.seconds, args.repeats)
        g = repeated(target, plain, connections, args.seconds, args.repeats)
        cpu = cpu_ms_per_request(g)
        if connections == 1:
            report.check(
                tag,
                "added p50 latency at concurrency 1 <= 1.0 ms",
                (g.p50_us - d.p50_us) / 1000,
                1.0,
                "ms",
            )
            report.add(
                f"[{tag}] chat, concurrency 1: p50 latency",
                f"{d.p50_us / 1000:.3f} ms",
                f"{g.p50_us / 1000:.3f} ms",
                f"+{(g.p50_us - d.p50_us) / 1000:.3f} ms p50, "
                f"+{(g.p99_us - d.p99_us) / 1000:.3f} ms p99",
            )
        report.add(
            f"[{tag}] chat, concurrency {connections}: throughput",
            fmt_rate(d),
            fmt_rate(g),
            f"{g.rate / d.rate:.2f}x of direct; CPU {cpu:.3f} ms/request",
        )
        if connections == 32:
            report.check(tag, "CPU per request (concurrency 32) <= 1.0 ms", cpu, 1.0, "ms")
        if d.failures or g.failures:
            report.notes.append(
                f"{tag} c={connections}: {d.failures} direct and "
                f"{g.failures} proxied requests failed"
            )
    d = repeated(direct, stream, 16, args.seconds, args.repeats)
    g = repeated(target, stream, 16, args.seconds, args.repeats)
    report.check(tag, "CPU per 20-chunk stream <= 2.0 ms", cpu_ms_per_request(g), 2.0, "ms")
    report.add(
        f"[{tag}] stream of 20 chunks, concurrency 16",
        f"{d.rate:,.0f} streams/s",
        f"{g.rate:,.0f} streams/s",
        f"{g.rate / d.rate:.2f}x; CPU {cpu_ms_per_request(g):.3f} ms/stream",
    )
    if d.failures or g.failures:
        report.notes.append(f"{tag} streams: {d.failures} direct and {g.failures} proxied failed")
    raw_stream = stream.read_bytes()
    fd = first_chunk.measure("127.0.0.1", direct.port, direct.path, raw_stream, "", args.ttfc)
    fg = first_chunk.measure(
        "127.0.0.1", target.port, target.path, raw_stream, target.auth, args.ttfc
    )
    added_first = fg["first_p50_ms"] - fd["first_p50_ms"]
    report.check(tag, "added time to first chunk <= 1.0 ms", added_first, 1.0, "ms")
    report.add(
        f"[{tag}] stream: time to first chunk (p50)",
        f"{fd['first_p50_ms']:.3f} ms",
        f"{fg['first_p50_ms']:.3f} ms",
        f"+{fg['first_p50_ms'] - fd['first_p50_ms']:.3f} ms",
    )
    if args.soak and target.pid is not None:
        idle, low, high = soak_memory(target, plain, args.soak)
        report.check(tag, "idle memory <= 150 MB", idle, 150, "MB")
        # "Flat": what the load added, at its peak, stays within 10 % of the idle size.
        report.check(
            tag,
            f"growth under {args.soak:g} s of load <= 10 % of idle",
            (high - idle) / idle * 100,
            10,
            "%",
        )
        report.add(
            f"[{tag}] memory, idle and under {args.soak:g} s of load at concurrency 32",
            "",
            f"{idle:.0f} MB idle",
            f"{low:.0f}-{high:.0f} MB under load",
        )


def whoami_run(target: Target, args: argparse.Namespace, random_key_chars: int = 0) -> Run:
    """GET whoami with the target's key, or with a new random key of that length per request."""
    extra = {"BENCH_RANDOM_KEY_CHARS": str(random_key_chars)}
    wrk(target, None, AUTH_CONNECTIONS, 1.0, "whoami.lua", extra)  # warm up
    runs = [
        wrk(target, None, AUTH_CONNECTIONS, args.seconds, "whoami.lua", extra)
        for _ in range(args.repeats)
    ]
    return median_run(runs)


def status_counts(run: Run) -> str:
    return ", ".join(f"{status}: {n:,}" for status, n in sorted(run.statuses.items()))


def bench_auth(tag: str, target: Target, report: Report, args: argparse.Namespace) -> None:
    """whoami with a valid key vs random keys: a flood of guesses must stay cheap (item 3)."""
    whoami = Target(target.name, target.port, WHOAMI_PATH, target.auth, target.pid)
    valid = whoami_run(whoami, args)
    random = whoami_run(whoami, args, KEY_LENGTH - len(KEY_PREFIX))
    # Shaped like keys issued before the checksum: with API_KEY_ACCEPT_LEGACY on (the default)
    # each one reaches the database, in shared, batched and bounded lookups.
    legacy = whoami_run(whoami, args, LEGACY_KEY_LENGTH - len(KEY_PREFIX))
    ratio = valid.rate / random.rate
    report.check(
        tag,
        f"whoami at concurrency {AUTH_CONNECTIONS}: valid-key rate / random-key rate <= 2.0",
        ratio,
        2.0,
        "x",
    )
    scenario = f"[{tag}] whoami, concurrency {AUTH_CONNECTIONS}"
    report.add(
        f"{scenario}: valid key",
        "",
        fmt_rate(valid),
        f"CPU {cpu_ms_per_request(valid):.3f} ms/request; {status_counts(valid)}",
    )
    for label, run in (("random keys", random), ("random legacy-shaped keys", legacy)):
        report.add(
            f"{scenario}: {label}",
            "",
            fmt_rate(run),
            f"{run.rate / valid.rate:.2f}x of the valid key's rate; "
            f"CPU {cpu_ms_per_request(run):.3f} ms/request; {status_counts(run)}",
        )
    if set(valid.statuses) != {"200"} or set(random.statuses) != {"401"}:
        report.notes.append(
            f"{tag} whoami: unexpected statuses: valid key {status_counts(valid)}, "
            f"random keys {status_counts(random)}"
        )


def bench_store(
    store: str, args: argparse.Namespace, workdir: Path, backend_port: int, report: Report
) -> None:
    label = "SQLite + in-process cache" if store == "sqlite" else "PostgreSQL + Redis"
    print(
        f"\n== gateway on {label}: one worker vs the backend directly "
        f"(median of {args.repeats} x {args.seconds:g} s)",
        flush=True,
    )
    with gateway(workdir, store, backend_port) as gw:
        if "proxy" in args.scenarios:
            bench_target(f"gateway, {store}", gw, args, workdir, backend_port, report)
        if "auth" in args.scenarios:
            bench_auth(f"gateway, {store}", gw, report, args)


def bench_accounting(
    args: argparse.Namespace, workdir: Path, backend_port: int, report: Report
) -> None:
    """Records and metrics on (production) vs off, on PostgreSQL + Redis, in the same run:
    the CPU they add per request and per stream; then N requests must leave N records."""
    from bench import accounting

    print(
        "\n== accounting: records + metrics on vs off (PostgreSQL + Redis), runs alternated "
        f"(median of {args.repeats} x {args.seconds:g} s)",
        flush=True,
    )
    base = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
    plain = body_file(workdir, "chat", stream=False)
    stream = body_file(workdir, "stream", stream=True)
    with contextlib.ExitStack() as stack:
        targets: dict[str, Target] = {}
        for name, overrides in ACCOUNTING.items():
            (workdir / name).mkdir()
            targets[name] = stack.enter_context(
                gateway(workdir / name, "postgres", backend_port, overrides, f"{base}_{name}")
            )
        for body, connections, unit in ((plain, 32, "request"), (stream, 16, "stream")):
            runs: dict[str, list[Run]] = {name: [] for name in targets}
            for target in targets.values():
                wrk(target, body, connections, 1.0)  # warm up
            # Alternated, so that what else loads the machine falls on both alike.
            for _ in range(args.repeats):
                for name, target in targets.items():
                    runs[name].append(wrk(target, body, connections, args.seconds))
            on, off = median_run(runs["on"]), median_run(runs["off"])
            cpu_on, cpu_off = cpu_ms_per_request(on), cpu_ms_per_request(off)
            what = "chat, concurrency 32" if unit == "request" else "stream of 20 chunks, c 16"
            report.add(
                f"[accounting] {what}: CPU per {unit}",
                f"{cpu_off:.3f} ms off ({fmt_rate(off)})",
                f"{cpu_on:.3f} ms on ({fmt_rate(on)})",
                f"{cpu_on - cpu_off:+.3f} ms per {unit}, {cpu_on / cpu_off:.3f}x",
            )
            report.check(
                "accounting",
                f"records + metrics add <= {ACCOUNTING_BUDGET_MS} ms per {unit}",
                cpu_on - cpu_off,
                ACCOUNTING_BUDGET_MS,
                "ms",
            )
            if on.failures or off.failures:
                report.notes.append(
                    f"accounting {unit}s: {on.failures} failed with records on, "
                    f"{off.failures} with them off"
                )
        recorded = targets["on"]
        url = recorded.env["DATABASE_URL"]
        metrics = f"http://127.0.0.1:{recorded.port}/metrics"
        # Every request the load above sent (wrk's own count misses those cut at its end).
        before = accounting.settled_count(url)
        answered = accounting.counter_total(metrics, "gateway_requests_total")
        report.add(
            "[accounting] wrk load: records vs the gateway's request counter",
            f"{answered:,.0f} answered",
            f"{before:,} records",
            "equal" if before == answered else "**differ**",
        )
        sent = args.records_check
        chat = f"http://127.0.0.1:{recorded.port}{CHAT_PATH}"
        ok = accounting.send_exactly(chat, recorded.auth, plain.read_bytes(), sent)
        written = accounting.settled_count(url) - before
        report.add(
            f"[accounting] {sent:,} requests sent at concurrency {accounting.CONCURRENCY}",
            f"{ok:,} answered 200",
            f"{written:,} records",
            "exactly N" if written == ok == sent else "**not N**",
        )
        report.check(
            "accounting",
            f"{sent:,} requests leave {sent:,} records",
            abs(written - sent),
            0,
            "missing or extra",
        )


def bench_litellm(
    args: argparse.Namespace, workdir: Path, backend_port: int, report: Report
) -> None:
    from bench.litellm import litellm_proxy

    print("\n== LiteLLM proxy: one worker vs the backend directly", flush=True)
    port = free_port()
    with litellm_proxy(workdir, backend_port, MODEL, port, GATEWAY_CORE) as pid:
        target = Target("litellm", port, "/v1/chat/completions", "", pid)
        bench_target("litellm", target, args, workdir, backend_port, report)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{model}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def write_results(report: Report, args: argparse.Namespace) -> None:
    if args.scenarios == ["accounting"]:
        append_accounting_section(report, args)
        return
    if args.scenarios == ["fair_share"]:
        from bench import fair_share

        fair_share.append_section(report, args)
        return
    if args.scenarios == ["routing"]:
        from bench import routing

        routing.append_section(report, args.output)
        return
    if args.scenarios == ["dashboard"]:
        from bench.dashboard import append_dashboard_section

        append_dashboard_section(report, args)
        return
    if args.scenarios in (["compute"], ["relay"]):
        from bench import compute

        compute.append_section(report, args)
        return
    if args.scenarios == ["streams"]:
        from bench import compute_streams

        compute_streams.append_section(report, args)
        return
    if args.scenarios == ["admission"]:
        from bench.admission import append_admission_section

        append_admission_section(report, args)
        return
    # A dated section added to the file (its earlier sections are the record of past runs).
    lines = [
        f"## Proxy and auth, {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Machine: {machine()}  ",
        f"Command: `make bench` (python -m bench.run --seconds {args.seconds:g} --repeats "
        f"{args.repeats} --soak {args.soak:g}"
        + "".join(f" --compare {name}" for name in args.compare)
        + (
            ""
            if args.scenarios == list(DEFAULT_SCENARIOS)
            else f" --scenarios {','.join(args.scenarios)}"
        )
        + ("" if args.stores == "sqlite,postgres" else f" --stores {args.stores}")
        + ")",
        "",
        "One gateway worker (uvicorn + uvloop + httptools) pinned to core 0; the fake backend "
        '(tests/fake_backend.py) and wrk pinned to core 1. "direct" calls the fake backend '
        "itself in the same run. Gateway CPU is user+system time of the gateway process from "
        "/proc/<pid>/stat divided by the requests served. Authentication: a gateway API key "
        "(cached after the first request).",
        "",
        "| scenario | direct | gateway | gateway vs direct |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in report.rows]
    if report.budget:
        lines += [
            "",
            "### Budget (one worker, API-key auth, fake backend)",
            "",
            "| target | budget | measured | met |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {tag} | {line} | {value} | {'yes' if met else '**no**'} |"
            for tag, line, value, met in report.budget
        ]
        lines += [
            "",
            "Records and metrics are on here (the defaults); what they add is measured "
            "against both off by `--scenarios accounting`, in a section of its own.",
        ]
    if report.notes:
        lines += ["", "Notes:", *[f"- {note}" for note in report.notes]]
    section = "\n".join(lines) + "\n"
    if args.output.exists():
        with args.output.open("a") as results:
            results.write("\n" + section)
    else:
        args.output.write_text("# Benchmark results\n\n" + section)
    print(f"\nadded a section to {args.output}")


def append_accounting_section(report: Report, args: argparse.Namespace) -> None:
    append_section(
        report,
        args,
        "Accounting: records + metrics on vs off",
        f"python -m bench.run --scenarios accounting --seconds {args.seconds:g} "
        f"--repeats {args.repeats} --records-check {args.records_check}",
        "Two gateways (one worker each, core 0) on PostgreSQL + Redis in the same run: the "
        "production configuration (RECORDS_ENABLED, METRICS_ENABLED on) and the same with both "
        "off, loaded in turn by wrk (core 1), each run alternated with the other's. Gateway "
        "CPU: user+system of the gateway process (its record-writer thread and metrics folding "
        "included; PostgreSQL's own CPU is not) per request served. Compare only within this "
        "section: other work on the machine changes absolute figures between runs.",
        "on vs off",
    )


def append_section(
    report: Report,
    args: argparse.Namespace,
    title: str,
    command: str,
    about: str,
    compare: str,
    columns: tuple[str, str] = ("off", "on"),
) -> None:
    """A dated section at the end of --output (a scenario run alone), the rest of the file
    kept: what ran, then its rows (`columns`, `compare`) and budget."""
    lines = [
        "",
        f"## {title}, {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        "",
        f"Machine: {machine()}  ",
        f"Command: `{command}`",
        "",
        about,
        "",
        f"| scenario | {columns[0]} | {columns[1]} | {compare} |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in report.rows],
        "",
        "| target | budget | measured | met |",
        "|---|---|---|---|",
        *[
            f"| {tag} | {line} | {value} | {'yes' if met else '**no**'} |"
            for tag, line, value, met in report.budget
        ],
    ]
    if report.notes:
        lines += ["", "Notes:", *[f"- {note}" for note in report.notes]]
    existing = args.output.read_text() if args.output.exists() else "# Benchmark results\n"
    args.output.write_text(existing.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
    print(f"\nadded a section to {args.output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each wrk run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--soak", type=float, default=60.0, help="memory soak seconds (0 = skip)")
    parser.add_argument("--ttfc", type=int, default=300, help="streams timed for first chunk")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        choices=["litellm"],
        help="also measure another gateway, installed in its own virtualenv",
    )
    parser.add_argument(
        "--stores",
        default="sqlite,postgres",
        help="comma list: sqlite (in-process cache), postgres (with Redis)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help="comma list: proxy (chat and streams vs direct), auth (whoami: valid vs random "
        "keys), accounting (records + metrics on vs off, PostgreSQL + Redis; adds a dated "
        "section to --output when run alone), fair_share (the noisy neighbour, fair share on "
        "vs off; a dated section when run alone), routing (load-aware vs round-robin over a "
        "fast and a 5x slower server; the same), admission (limits + an allocation on vs off, "
        "PostgreSQL + Redis; the same), batches (lines/s with one worker, peak memory for a "
        "1,000,000-line input; PostgreSQL + Redis), dashboard (each page's answer with "
        "1,000,000 records in PostgreSQL, chart cache off and on; a dated section when run "
        "alone), compute (the Globus Compute path against bench/compute_standin.py: CPU per "
        "task at concurrency 1/32/256, side-channel relay "
        "with Redis and in-process, 1,000 requests in flight, then the open streams), relay "
        "(the compute scenario's side-channel relay alone), streams "
        "(the open streams alone: 100, 1,000, 10,000 held open on the direct path; a dated "
        "section when run alone), cpu_profile (where the gateway's CPU goes in the relay, one "
        "Compute task at a time and 1,000 open streams: cProfile by part of the program, as "
        "notes)",
    )
    parser.add_argument(
        "--records",
        choices=["on", "off"],
        default="on",
        help="request records (RECORDS_ENABLED): run once each way to measure their cost",
    )
    parser.add_argument(
        "--metrics",
        choices=["on", "off"],
        default="on",
        help="Prometheus series (METRICS_ENABLED); --scenarios accounting compares both "
        "switches on against both off in one run",
    )
    parser.add_argument(
        "--records-check",
        type=int,
        default=10_000,
        help="accounting scenario: requests sent after the load, each to leave one record",
    )
    parser.add_argument(
        "--callgrind-requests",
        type=int,
        default=640,
        help="admission scenario: requests counted under callgrind per gateway (0 = skip; "
        "skipped without valgrind)",
    )
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args()
    # gateway_env copies this process's environment into every gateway it starts.
    os.environ["RECORDS_ENABLED"] = "true" if args.records == "on" else "false"
    os.environ["METRICS_ENABLED"] = "true" if args.metrics == "on" else "false"
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    ensure_wrk()
    if (os.cpu_count() or 1) >= 2:
        # The first-chunk timer runs in this process: keep it off the gateway's core, like wrk.
        os.sched_setaffinity(0, {DRIVER_CORE})
    report = Report()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        workdir = Path(tmp)
        with fake_backend(workdir) as backend_port:
            if set(args.scenarios) & {"proxy", "auth"}:
                for store in [s.strip() for s in args.stores.split(",") if s.strip()]:
                    (workdir / store).mkdir()
                    bench_store(store, args, workdir / store, backend_port, report)
            if "accounting" in args.scenarios:
                (workdir / "accounting").mkdir()
                bench_accounting(args, workdir / "accounting", backend_port, report)
            if "fair_share" in args.scenarios:
                from bench import fair_share

                fair_share.bench(args, workdir / "fair_share", report)
            if "routing" in args.scenarios:
                from bench import routing

                (workdir / "routing").mkdir()
                routing.bench(workdir / "routing", report)
            if "admission" in args.scenarios:
                from bench.admission import bench_admission

                (workdir / "admission").mkdir()
                bench_admission(args, workdir / "admission", backend_port, report)
            if "batches" in args.scenarios:
                from bench.batches import bench_batches

                (workdir / "batches").mkdir()
                bench_batches(workdir / "batches", backend_port, report)
            if "dashboard" in args.scenarios:
                from bench.dashboard import bench_dashboard

                (workdir / "dashboard").mkdir()
                bench_dashboard(workdir / "dashboard", backend_port, report)
            if "compute" in args.scenarios or "relay" in args.scenarios:
                from bench import compute

                compute.bench(args, workdir / "compute", backend_port, report)
            if "streams" in args.scenarios and "compute" not in args.scenarios:
                from bench import compute_streams

                compute_streams.bench(workdir / "streams", report)
            if "stream_instructions" in args.scenarios:
                from bench import stream_callgrind

                stream_callgrind.bench(workdir / "stream_instructions", report)
            if "cpu_profile" in args.scenarios:
                from bench import cpu_profile

                cpu_profile.bench(workdir / "cpu_profile", backend_port, report)
            if "litellm" in args.compare:
                (workdir / "litellm").mkdir()
                bench_litellm(args, workdir / "litellm", backend_port, report)
    write_results(report, args)


if __name__ == "__main__":
    main()
