"""Admission's Redis calls: one bounded connection pool, each script call under a timeout, and
a pause after a failure so that an outage fails each decision at once, not after a timeout."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from resource_server_async.admission.limiter import LimiterUnavailable

# After a failure, calls fail at once for this long instead of each waiting for a timeout.
PAUSE_AFTER_FAILURE = 1.0


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
        self.redis: Any = redis.Redis(connection_pool=pool)
        self.timeout = timeout
        self._paused_until = 0.0

    def register(self, source: str) -> Any:
        return self.redis.register_script(source)

    async def run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """The script's answer; LimiterUnavailable when Redis fails or is slow."""
        if self._paused_until > time.monotonic():
            raise LimiterUnavailable("Redis failed a moment ago")
        from redis.exceptions import RedisError

        try:
            return await asyncio.wait_for(script(keys=keys, args=args), self.timeout * 2)
        except (RedisError, OSError, TimeoutError) as exc:
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
            raise LimiterUnavailable(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        await self.redis.aclose()
