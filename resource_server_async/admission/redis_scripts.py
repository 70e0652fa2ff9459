"""Admission's Redis calls: Lua scripts through the process's pipelined connection
(redis_pipe.py), each under a timeout, and a pause after a failure so that an outage fails each
decision at once, not after a timeout. A small redis-py client beside it serves what is not on
a request's path (the fair queue's pub/sub and its introspection).

One RedisScripts per process (`runtime.current.admission_redis`) serves the limiter, the
allocation ledger and the fair queue, so that a request's limit and allocation calls, and its
releases, go out in one write and come back in one read on one connection."""

from __future__ import annotations

import time
from typing import Any

from resource_server_async.admission.limiter import LimiterUnavailable
from resource_server_async.admission.redis_outbox import Outbox
from resource_server_async.admission.redis_pipe import RedisUnavailable, Script, ScriptPipe
from resource_server_async.admission.resp import Packed, packed_value

# After a failure, calls fail at once for this long instead of each waiting for a timeout.
PAUSE_AFTER_FAILURE = 1.0
# Connections of the redis-py client: the grant listener's subscription and a few reads.
_SIDE_CONNECTIONS = 4


class RedisScripts:
    def __init__(self, url: str, *, timeout: float, pending: int) -> None:
        self._url = url
        self.timeout = timeout
        self._pipe = ScriptPipe(url, timeout=timeout, max_pending=pending)
        self._outbox = Outbox(self._pipe, max_pending=pending)
        self._side: Any = None
        self._paused_until = 0.0

    @classmethod
    def from_settings(cls) -> RedisScripts:
        from django.conf import settings

        return cls(
            settings.REDIS_URL,
            timeout=settings.LIMITS_REDIS_TIMEOUT,
            pending=settings.LIMITS_REDIS_MAX_PENDING,
        )

    @property
    def redis(self) -> Any:
        """The redis-py client, for what is not a script call (built on first use)."""
        if self._side is None:
            import redis.asyncio as redis

            pool = redis.BlockingConnectionPool.from_url(
                self._url,
                max_connections=_SIDE_CONNECTIONS,
                timeout=self.timeout,
                socket_timeout=None,  # the subscription waits for messages as long as it lives
                socket_connect_timeout=self.timeout,
            )
            self._side = redis.Redis(connection_pool=pool)
        return self._side

    def register(self, source: str) -> Script:
        return Script(source)

    def start(self, script: Script, keys: list[str], args: list[Any] | Packed) -> Any:
        """Send the call now (with the others of this loop iteration), await the reply later:
        calls started before awaiting any of them share one write. (`args` a Packed: the key
        count, keys and arguments packed already, `keys` empty; resp.py.)"""
        if self._paused_until and self._paused_until > time.monotonic():
            raise LimiterUnavailable("Redis failed a moment ago")
        return self._pipe.call(script, keys, args)

    def register_release(self, source: str) -> Script:
        """A script whose calls need no reply (a release): `send` bundles them (redis_outbox)."""
        script = Script(source)
        self._outbox.register(script)
        return script

    def send(self, script: Script, keys: list[str], args: list[Any]) -> None:
        """Queue a release (a script of `register_release`) for this turn's bundle; a failure
        is logged when Redis answers. LimiterUnavailable when Redis failed a moment ago or too
        many releases wait."""
        self.send_packed(
            script,
            len(keys),
            b"".join(map(packed_value, keys)),
            len(args),
            b"".join(map(packed_value, args)),
        )

    def send_packed(
        self, script: Script, key_count: int, keys: bytes, arg_count: int, args: bytes
    ) -> None:
        """`send` with the keys and arguments packed already (resp.py)."""
        if self._paused_until and self._paused_until > time.monotonic():
            raise LimiterUnavailable("Redis failed a moment ago")
        try:
            self._outbox.post(script, key_count, keys, arg_count, args)
        except RedisUnavailable as exc:
            raise LimiterUnavailable(str(exc)) from exc

    async def run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """The script's answer; LimiterUnavailable when Redis fails or is slow."""
        return await self.reply(self.start(script, keys, args))

    async def reply(self, started: Any) -> Any:
        """The answer of a call from `start`."""
        try:
            return await started
        except RedisUnavailable as exc:
            raise self.failed(exc) from exc

    def failed(self, exc: RedisUnavailable) -> LimiterUnavailable:
        """Pause the calls after a failure; the error for the caller. (Callers on the request
        path await `start`'s future themselves: one coroutine less per call than `reply`.)"""
        self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        return LimiterUnavailable(str(exc))

    async def close(self) -> None:
        await self._pipe.close()
        if self._side is not None:
            await self._side.aclose()
