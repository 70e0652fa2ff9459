"""Whether this worker can serve: the database answers, Redis (when configured) answers, and the
catalog is loaded. For load balancers (`GET /resource_server/ready`); `health` stays free of
dependencies, so that a database outage does not make an orchestrator restart every worker.

One check runs at a time and its answer is reused for READY_CACHE_SECONDS, so a load balancer
probing every worker often costs the database one `SELECT 1` per worker and second at most.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, connection

from resource_server_async.catalog.snapshot import catalog

OK = "ok"


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]  # part -> "ok", "not configured" or what went wrong

    @property
    def ready(self) -> bool:
        return all(state in (OK, "not configured") for state in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [part for part, state in self.checks.items() if state not in (OK, "not configured")]


def _select_one() -> None:
    close_old_connections()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # A broken connection must not be reused by the next check.
        close_old_connections()


async def _redis_ping(url: str, timeout: float) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        await client.ping()
    finally:
        await client.aclose()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within READY_TIMEOUT_SECONDS"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@dataclass
class ReadinessProbe:
    cache_seconds: float
    timeout: float
    _answer: Readiness | None = None
    _checked_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # One thread: a database that hangs holds one thread, not one per probe.
    _executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="ready")
    )

    @classmethod
    def from_settings(cls) -> ReadinessProbe:
        return cls(settings.READY_CACHE_SECONDS, settings.READY_TIMEOUT_SECONDS)

    async def check(self) -> Readiness:
        async with self._lock:
            if self._answer is None or time.monotonic() - self._checked_at >= self.cache_seconds:
                self._answer = await self._check_now()
                self._checked_at = time.monotonic()
            return self._answer

    async def _part(self, work: Callable[[], Awaitable[None]]) -> str:
        try:
            await asyncio.wait_for(work(), self.timeout)
        except Exception as exc:
            return _reason(exc)
        return OK

    async def _check_now(self) -> Readiness:
        loop = asyncio.get_running_loop()

        async def database() -> None:
            await loop.run_in_executor(self._executor, _select_one)

        parts = [self._part(database)]
        if settings.REDIS_URL:
            parts.append(self._part(lambda: _redis_ping(settings.REDIS_URL, self.timeout)))
        states = await asyncio.gather(*parts)
        checks = {"database": states[0]}
        checks["redis"] = states[1] if settings.REDIS_URL else "not configured"
        checks["catalog"] = OK if catalog.loaded else "not loaded yet"
        return Readiness(checks)
