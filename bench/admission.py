"""The admission scenario: what limits and an allocation cost per request, on Redis.

`bench.run --scenarios admission` starts three gateways on PostgreSQL + Redis: one whose
endpoint has every limit (rpm_user, tpm_user, max_concurrent_user, rpm_model, tpm_model, all far
above the load, so nothing is refused) and whose caller's project has a token allocation (also
far above it), one with the limits only, and one with neither; wrk loads them in turn in the
same run. The difference in gateway CPU per request is the cost of admission: with both, one
Redis script at admission (admission/joint.py: limits and allocation together) and one release
at the end (both corrections, in the turn's bundle of releases).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from bench import callgrind
from scripts.processes import wait_until

if TYPE_CHECKING:
    from bench.run import Report, Target

BUDGET_MS = 0.05
# High enough that a bench run never meets them: the decision is made, nothing is refused.
LIMITS = {
    "rpm_user": 100_000_000,
    "tpm_user": 1_000_000_000,
    "max_concurrent_user": 10_000,
    "rpm_model": 100_000_000,
    "tpm_model": 1_000_000_000,
}
ALLOCATION_TOKENS = 10**15

_SET_LIMITS = (
    "from resource_server_async.models import Endpoint\n"
    "for e in Endpoint.objects.all():\n"
    "    for k, v in {limits}.items(): setattr(e, k, v)\n"
    "    e.save()\n"
)


def _get(url: str, auth: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": auth})
    with urllib.request.urlopen(request, timeout=10) as answer:
        body: bytes = answer.read()
        return body


def turn_on(target: Target, allocation: bool) -> None:
    """Limits on the endpoint and (`allocation`) a project allocation for the bench key, then
    wait until the gateway's catalog has them (it refreshes within CATALOG_REFRESH_SECONDS)."""
    from bench.run import manage

    env = target.env
    manage(env, "shell", "-c", _SET_LIMITS.format(limits=LIMITS))
    if not allocation:
        if not wait_until(lambda: _limited(target), 30):
            raise RuntimeError("the limits-only gateway never loaded the limits")
        return
    manage(env, "allocations", "project", "bench", "--key", "bench")
    manage(
        env,
        "allocations",
        "set",
        "bench-month",
        "--project",
        "bench",
        "--tokens",
        str(ALLOCATION_TOKENS),
    )
    usage = f"http://127.0.0.1:{target.port}/resource_server/v1/usage"

    def loaded() -> bool:
        return bool(json.loads(_get(usage, target.auth))["allocations"])

    if not wait_until(loaded, 30):
        raise RuntimeError("the gateway never loaded the bench allocation")


def environments() -> dict[str, dict[str, str]]:
    """The gateways' own settings: keys of this run only in the shared Redis."""
    run = uuid.uuid4().hex[:8]
    shared = {"CATALOG_REFRESH_SECONDS": "0.2"}
    return {
        "on": {
            **shared,
            "LIMITS_REDIS_PREFIX": f"bench-limits:{run}:on:",
            "ALLOCATIONS_REDIS_PREFIX": f"bench-alloc:{run}:",
        },
        "limits": {**shared, "LIMITS_REDIS_PREFIX": f"bench-limits:{run}:limits:"},
        "off": shared,
    }


def _limited(target: Target) -> bool:
    """One request carries the limit headers (the catalog has the limits: admission ran)."""
    from bench.run import CHAT_PATH, MESSAGES, MODEL

    body = json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 16}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{target.port}{CHAT_PATH}",
        data=body,
        headers={"Authorization": target.auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return "x-ratelimit-limit-requests" in answer.headers


def append_admission_section(report: Report, args: argparse.Namespace) -> None:
    from bench.run import append_section

    append_section(
        report,
        args,
        "Admission: limits + an allocation on vs off",
        f"python -m bench.run --scenarios admission --seconds {args.seconds:g} "
        f"--repeats {args.repeats}",
        "Three gateways (one worker each, core 0) on PostgreSQL + Redis in the same run: one "
        "whose endpoint has all five limits and whose caller's project has a token allocation "
        "(all far above the load: every request is decided and charged, none refused), one "
        "with the limits only, and one with neither; wrk (core 1) loads them in turn, each run "
        "alternated with the others'. Records and metrics are on in all three. Gateway CPU: "
        "user+system of the gateway process per request served (Redis's own CPU is not "
        "counted). Compare only within this section.",
        "on vs off",
    )


def bench_admission(
    args: argparse.Namespace, workdir: Path, backend_port: int, report: Report
) -> None:
    """Admission on (limits + allocation, Redis) vs off, alternated runs, CPU per request."""
    from bench import run

    print(
        "\n== admission: limits + allocation on vs off (PostgreSQL + Redis), runs alternated "
        f"(median of {args.repeats} x {args.seconds:g} s)",
        flush=True,
    )
    base = os.environ.get("BENCH_DATABASE_URL", run.DEFAULT_DATABASE)
    plain = run.body_file(workdir, "chat", stream=False)
    with contextlib.ExitStack() as stack:
        targets: dict[str, Target] = {}
        for name, overrides in environments().items():
            (workdir / name).mkdir()
            targets[name] = stack.enter_context(
                run.gateway(workdir / name, "postgres", backend_port, overrides, f"{base}_{name}")
            )
        turn_on(targets["on"], allocation=True)
        turn_on(targets["limits"], allocation=False)
        if not _limited(targets["on"]):
            raise RuntimeError("the 'on' gateway answered without rate-limit headers")
        runs: dict[str, list[run.Run]] = {name: [] for name in targets}
        for target in targets.values():
            run.wrk(target, plain, 32, 1.0)  # warm up
        for _ in range(args.repeats):
            for name, target in targets.items():
                runs[name].append(run.wrk(target, plain, 32, args.seconds))
        medians = {name: run.median_run(found) for name, found in runs.items()}
        on, off = medians["on"], medians["off"]
        cpu_off = run.cpu_ms_per_request(off)
        for name, label in (("limits", "limits only"), ("on", "limits + allocation")):
            cpu = run.cpu_ms_per_request(medians[name])
            report.add(
                f"[admission] chat, concurrency 32: CPU per request, {label}",
                f"{cpu_off:.3f} ms off ({run.fmt_rate(off)})",
                f"{cpu:.3f} ms on ({run.fmt_rate(medians[name])})",
                f"{cpu - cpu_off:+.3f} ms per request, {cpu / cpu_off:.3f}x",
            )
        cpu_on = run.cpu_ms_per_request(on)
        report.check(
            "admission",
            f"limits + allocation add <= {BUDGET_MS} ms per request",
            cpu_on - cpu_off,
            BUDGET_MS,
            "ms",
        )
        if on.failures or off.failures:
            report.notes.append(
                f"admission: {on.failures} failed with admission on, {off.failures} off"
            )
    # After the wrk gateways have stopped: nothing else of the bench runs meanwhile.
    if args.callgrind_requests and callgrind.available():
        count_instructions(args, workdir / "callgrind", backend_port, report, cpu_off)


def count_instructions(
    args: argparse.Namespace, workdir: Path, backend_port: int, report: Report, cpu_off: float
) -> None:
    """The same three gateways again, each under callgrind: instructions per request, which
    the machine's other load does not move. The added instructions are also put in ms at the
    off gateway's CPU time per instruction in this run (its wrk figure above)."""
    from bench import run

    print(f"\n== admission under callgrind: {args.callgrind_requests} requests each", flush=True)
    base = os.environ.get("BENCH_DATABASE_URL", run.DEFAULT_DATABASE)
    body = json.dumps({"model": run.MODEL, "messages": run.MESSAGES, "max_tokens": 16}).encode()
    counted: dict[str, float] = {}
    for name, overrides in environments().items():
        directory = workdir / name
        directory.mkdir(parents=True)
        gateway = run.gateway(
            directory,
            "postgres",
            backend_port,
            overrides,
            f"{base}_cg_{name}",
            command_prefix=callgrind.prefix(directory),
            startup_seconds=callgrind.STARTUP_SECONDS,
        )
        with gateway as target:
            assert target.pid is not None
            if name != "off":
                turn_on(target, allocation=name == "on")
            headers = [("Authorization", target.auth), ("Content-Type", "application/json")]
            counted[name] = callgrind.instructions_per_request(
                directory,
                target.pid,
                target.port,
                run.CHAT_PATH,
                body,
                headers,
                count=args.callgrind_requests,
                concurrency=32,
            )
        print(f"  {name}: {counted[name]:,.0f} instructions per request", flush=True)
    off = counted["off"]
    for name, label in (("limits", "limits only"), ("on", "limits + allocation")):
        added = counted[name] - off
        report.add(
            f"[admission] chat, concurrency 32: instructions per request (callgrind), {label}",
            f"{off:,.0f} off",
            f"{counted[name]:,.0f} on",
            f"{added:+,.0f} per request, {counted[name] / off:.3f}x; "
            f"{added / off * cpu_off:+.3f} ms at this run's {cpu_off:.3f} ms per request off",
        )
    report.check(
        "admission",
        f"limits + allocation add <= {BUDGET_MS} ms per request (callgrind's instructions "
        "at this run's CPU time per instruction)",
        (counted["on"] - off) / off * cpu_off,
        BUDGET_MS,
        "ms",
    )
