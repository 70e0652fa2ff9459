"""The accounting scenario's own measures: records counted in the database, an exact number of
requests sent, and the gateway's Prometheus counters read back.

`bench.run --scenarios accounting` starts two gateways on PostgreSQL + Redis, one in the
production configuration (records on, metrics on) and one with both off, and loads them in turn
in the same run; this module checks that N requests left exactly N records.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request

import aiohttp
import psycopg

TABLE = "resource_server_async_requestrecord"
# Requests in flight while sending the exact batch (as wrk's concurrency 32 scenario).
CONCURRENCY = 32


def record_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
    return int(row[0]) if row else 0


def settled_count(database_url: str, timeout: float = 60.0) -> int:
    """The record count once the writer has flushed: unchanged over two reads 1 s apart (its
    queue is written within milliseconds when the database answers)."""
    deadline = time.monotonic() + timeout
    last = record_count(database_url)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = record_count(database_url)
        if now == last:
            return now
        last = now
    raise RuntimeError(f"the record count did not settle within {timeout:g} s")


def send_exactly(url: str, auth: str, body: bytes, count: int) -> int:
    """POST `body` `count` times (CONCURRENCY at a time); the number answered 200."""

    async def run() -> int:
        ok = 0
        left = iter(range(count))
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as session:

            async def worker() -> None:
                nonlocal ok
                for _ in left:
                    async with session.post(url, data=body) as answer:
                        await answer.read()
                        ok += answer.status == 200

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return ok

    return asyncio.run(run())


def counter_total(metrics_url: str, name: str) -> float:
    """The sum of a counter's series in the gateway's /metrics text (open in dev mode)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + "{", name + " "))
    )
