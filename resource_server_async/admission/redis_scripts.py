"""A pooled Redis client for admission's scripts (limits, allocations): every call bounded by a
timeout, and after a failure, calls fail at once for a second instead of each waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from resource_server_async.admission.limiter import LimiterUnavailable

_PAUSE_AFTER_FAILURE = 1.0


class RedisScripts:
    def __init__(self, url: str, *, timeout: float, connections: int) -> None:
        import redis.asyncio as redis

        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self.client: Any = redis.Redis(connection_pool=pool)
        self._timeout = timeout
        self._paused_until = 0.0

    def register(self, source: str) -> Any:
        return self.client.register_script(source)

    async def run(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """`call()`'s answer, or LimiterUnavailable when Redis fails or does not answer."""
        if self._paused_until > time.monotonic():
            raise LimiterUnavailable("Redis failed a moment ago")
        from redis.exceptions import RedisError

        try:
            return await asyncio.wait_for(call(), self._timeout * 2)
        except (RedisError, OSError, TimeoutError) as exc:
            self._paused_until = time.monotonic() + _PAUSE_AFTER_FAILURE
            raise LimiterUnavailable(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        await self.client.aclose()
