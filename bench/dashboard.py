"""The dashboard scenario: each page's server answer with 1,000,000 request records in
PostgreSQL (`python -m bench.run --scenarios dashboard`); target <= 300 ms per page.

The records are made by the database itself (INSERT ... SELECT over generate_series: seconds,
not minutes), spread over 30 days, 40 users, 6 models, 3 clusters, 12 projects, 5% failures.
Their hourly roll-up (what the day and 30-day charts read) is then made by the migration's
backfill (accounting.rollup.rebuild), the same SQL the record writer folds each batch with.
Each page is fetched by a signed-in staff client with the chart cache off (every answer runs
its queries: the cold case an operator meets first) and on (DASHBOARD_CACHE_SECONDS=5).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import httpx2 as httpx
import psycopg

from bench.run import DEFAULT_DATABASE, Report, append_section, gateway, manage

RECORDS = 1_000_000
PAGES = ("", "clusters/", "models/", "users/", "errors/", "batches/")
RANGES = ("hour", "day", "month")
REPEATS = 5
TARGET_MS = 300.0
PASSWORD = "bench-dashboard-password-1"

_FILL = """
INSERT INTO resource_server_async_requestrecord (
    request_key, request_id, received_at, route, operation, client_address, principal_id,
    username, idp_domain, credential, groups, project, cluster, framework, model, endpoint_slug,
    stream, status, error_code, duration, upstream_duration, time_to_first_token, prompt_tokens,
    completion_tokens, total_tokens, usage_estimated, compute_task_id, response_time,
    disconnected, prompt, answer)
SELECT 'bench-' || g, 'bench-' || g, now() - (g * interval '30 days' / %(n)s), 'cluster',
    'chat/completions', '127.0.0.1', 'user-' || (g %% 40), 'user' || (g %% 40) || '@example.org',
    'example.org', 'api_key', '[]', 'project-' || (g %% 12), 'cluster-' || (g %% 3), 'vllm',
    'model-' || (g %% 6), 'cluster-' || (g %% 3) || '-vllm-model-' || (g %% 6), g %% 2 = 0,
    CASE WHEN g %% 20 = 0 THEN 502 ELSE 200 END,
    CASE WHEN g %% 20 = 0 THEN 'upstream_error' ELSE '' END,
    0.05 + (g %% 997) / 200.0, 0.04 + (g %% 997) / 210.0, 0.01 + (g %% 389) / 400.0,
    10 + g %% 500, 5 + g %% 300, 15 + g %% 500 + g %% 300, false, '', NULL, false, '', ''
FROM generate_series(1, %(n)s) AS g
"""


def fill(database_url: str, count: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_FILL, {"n": count})
        conn.execute("ANALYZE resource_server_async_requestrecord")
    return time.perf_counter() - started


def roll_up(env: dict[str, str]) -> tuple[float, int]:
    """The roll-up of the records, as the migration makes it; its seconds and UsageHour rows."""
    started = time.perf_counter()
    manage(
        env, "shell", "-c",
        "from resource_server_async.accounting.rollup import rebuild; rebuild()",
    )  # fmt: skip
    seconds = time.perf_counter() - started
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("ANALYZE resource_server_async_usagehour")
        conn.execute("ANALYZE resource_server_async_latencyhour")
        row = conn.execute("SELECT count(*) FROM resource_server_async_usagehour").fetchone()
    return seconds, row[0] if row else 0


def signed_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    page = client.get("/dashboard/login/")
    token = page.cookies["csrftoken"]
    answer = client.post(
        "/dashboard/login/",
        data={"username": "bench", "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    if answer.status_code != 302:
        raise RuntimeError(f"bench sign-in failed: {answer.status_code}")
    return client


def timed(client: httpx.Client, path: str) -> list[float]:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: {answer.status_code}")
    return times


def bench_dashboard(workdir: Path, backend_port: int, report: Report) -> None:
    print(f"\n== dashboard: {RECORDS:,} records in PostgreSQL", flush=True)
    base = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
    for cache_seconds in ("0", "5"):
        overrides = {"DASHBOARD_CACHE_SECONDS": cache_seconds}
        database = f"{base}_dashboard"
        (workdir / cache_seconds).mkdir()
        with gateway(workdir / cache_seconds, "postgres", backend_port, overrides, database) as t:
            assert t.env is not None
            seconds = fill(t.env["DATABASE_URL"], RECORDS)
            report.notes.append(f"{RECORDS:,} records inserted in {seconds:.1f} s")
            seconds, rows = roll_up(t.env)
            made = f"roll-up (hour, day) made in {seconds:.1f} s: {rows:,} UsageHour rows"
            report.notes.append(made)
            manage(
                t.env, "shell", "-c",
                "from django.contrib.auth.models import User; "
                f"User.objects.create_user('bench', password={PASSWORD!r}, is_staff=True)",
            )  # fmt: skip
            client = signed_in(f"http://127.0.0.1:{t.port}")
            cache = "cache off" if cache_seconds == "0" else "cache on"
            for span in RANGES:
                for page in PAGES:
                    times = timed(client, f"/dashboard/{page}?range={span}")
                    # With the cache on, the first answer fills it; the rest are what it saves.
                    measured = times[1:] if cache_seconds != "0" else times
                    median = statistics.median(measured)
                    name = f"/dashboard/{page} {span}"
                    report.add(
                        f"{name} ({cache})",
                        f"first {times[0]:.0f} ms",
                        f"median {median:.0f} ms",
                        f"max {max(measured):.0f} ms",
                    )
                    report.check(f"{name} ({cache})", "<= 300 ms", median, TARGET_MS, "ms")
            client.close()


def append_dashboard_section(report: Report, args: object) -> None:
    about = (
        f"{RECORDS:,} records over 30 days (INSERT ... SELECT generate_series), one gateway "
        "worker on PostgreSQL + Redis; each page fetched {REPEATS} times by a signed-in staff "
        "client (httpx, the whole server answer: Django, every chart's query, the template). "
        '"cache off": DASHBOARD_CACHE_SECONDS=0, every answer runs its queries; "cache on": the '
        "default 5 s, the median of the answers after the first."
    ).replace("{REPEATS}", str(REPEATS))
    append_section(
        report,
        args,  # type: ignore[arg-type]
        "Dashboard pages",
        "python -m bench.run --scenarios dashboard",
        about,
        "max",
    )
