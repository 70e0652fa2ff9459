"""What federated routing remembers between requests: load, latency and circuits per endpoint,
shared with the other gateway workers through Redis when REDIS_URL is set.

Sharing is a background task, not a call per request: every ROUTING_SHARE_SECONDS each worker
writes its own in-flight counts and newly opened or closed circuits, and reads the other
workers' (two pipelined round trips). The request path reads only this process's dicts, so
sharing adds no Redis latency to a request; the price is counts up to one interval old.
Circuits are shared per host (the key names the host), as a circuit describes the path from
this host to the model server. Without Redis every worker keeps its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from typing import Any

from resource_server_async.endpoints.circuit import Circuits
from resource_server_async.endpoints.load import EndpointLoad

logger = logging.getLogger(__name__)

_WARN_EVERY = 60.0  # seconds between warnings while Redis fails


class RoutingState:
    def __init__(
        self,
        *,
        failures: int,
        cooldown: float,
        redis_url: str = "",
        prefix: str = "igw:routing:",
        interval: float = 0.5,
    ) -> None:
        self.load = EndpointLoad()
        self.circuits = Circuits(failures, cooldown)
        self._redis_url = redis_url
        self._prefix = prefix
        self._interval = interval
        self._worker = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._circuit_key = f"{prefix}circuits:{socket.gethostname()}"
        self._redis: Any = None
        self._task: asyncio.Task[None] | None = None
        self._warned = 0.0

    def start_sharing(self) -> None:
        """Start the background share with the other workers (once; no-op without Redis)."""
        if self._task is not None or not self._redis_url:
            return
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(
            self._redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
        )
        self._task = asyncio.get_running_loop().create_task(self._share_forever())

    async def _share_forever(self) -> None:
        while True:
            try:
                await self.share()
            except Exception as exc:  # Redis down: keep routing on this worker's own view
                if time.monotonic() - self._warned > _WARN_EVERY:
                    self._warned = time.monotonic()
                    logger.warning("routing: cannot share load through Redis: %s", exc)
                self.load.others.clear()
            await asyncio.sleep(self._interval)

    async def share(self) -> None:
        """Publish this worker's counts and circuit changes; read the others'."""
        now = time.time()
        ttl_ms = int(self._interval * 4000) + 1000
        workers = f"{self._prefix}workers"
        own = f"{self._prefix}inflight:{self._worker}"
        opened, closed = dict(self.circuits.opened), set(self.circuits.closed)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(own)
        if self.load.local:
            pipe.hset(own, mapping=self.load.local)
            pipe.pexpire(own, ttl_ms)
        pipe.zadd(workers, {self._worker: now})
        pipe.zremrangebyscore(workers, "-inf", now - ttl_ms / 1000)
        pipe.pexpire(workers, ttl_ms)
        if opened:
            pipe.hset(self._circuit_key, mapping=opened)
            pipe.expire(self._circuit_key, int(self.circuits.cooldown) + 1)
        if closed:
            pipe.hdel(self._circuit_key, *closed)
        pipe.zrange(workers, 0, -1)
        pipe.hgetall(self._circuit_key)
        *_, names, shared = await pipe.execute()
        for slug in opened:
            self.circuits.opened.pop(slug, None)
        self.circuits.closed.difference_update(closed)
        self.circuits.adopt({k.decode(): float(v) for k, v in shared.items()})
        others = [name.decode() for name in names if name.decode() != self._worker]
        counts: dict[str, int] = {}
        if others:
            read = self._redis.pipeline(transaction=False)
            for name in others:
                read.hgetall(f"{self._prefix}inflight:{name}")
            for hash_ in await read.execute():
                for slug, count in hash_.items():
                    key = slug.decode()
                    counts[key] = counts.get(key, 0) + int(count)
        self.load.others = counts

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.delete(f"{self._prefix}inflight:{self._worker}")
            await self._redis.aclose()
            self._redis = None
