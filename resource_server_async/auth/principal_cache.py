"""Validated principals (and recent denials) by the SHA-256 of the token: Redis and in-process."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings

from resource_server_async.auth.principal import Principal
from resource_server_async.errors import GatewayError

logger = logging.getLogger(__name__)

_REDIS_TIMEOUT = 1.0
# Redis trouble is logged at most this often (s), so an outage does not flood the log.
_WARN_EVERY = 60.0


def token_digest(token: str) -> str:
    """The cache key of a token: its SHA-256, so the token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What validating a token concluded, valid until `until` (epoch seconds)."""

    until: float
    principal: Principal | None = None
    denial: GatewayError | None = None

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"until": self.until}
        if self.principal is not None:
            body["principal"] = self.principal.as_dict()
        if self.denial is not None:
            d = self.denial
            body["denial"] = {
                "status": d.status,
                "code": d.code,
                "message": d.message,
                "headers": d.headers,
                "extra": d.extra,
            }
        return orjson.dumps(body)

    @classmethod
    def from_json(cls, raw: bytes) -> Outcome:
        body = orjson.loads(raw)
        denial = None
        if "denial" in body:
            d = body["denial"]
            denial = GatewayError(
                d["status"], d["code"], d["message"], headers=d["headers"], extra=d["extra"]
            )
        principal = Principal.from_dict(body["principal"]) if "principal" in body else None
        return cls(until=float(body["until"]), principal=principal, denial=denial)


class OutcomeLru:
    """A bounded LRU of outcomes; expired entries are dropped when read (also used by API keys)."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[str, Outcome] = OrderedDict()
        self._max_entries = max_entries

    def get(self, key: str, now: float) -> Outcome | None:
        outcome = self._entries.get(key)
        if outcome is None:
            return None
        if outcome.until <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return outcome

    def put(self, key: str, outcome: Outcome) -> None:
        self._entries[key] = outcome
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class PrincipalCache:
    """In-process LRU in front of Redis (when REDIS_URL is set), shared by all workers.

    Entries never change before they expire, so a worker may keep a copy read from Redis until
    the same expiry; Redis only saves the other workers a trip to Globus.
    """

    def __init__(self, namespace: str = "auth:globus", max_entries: int = 10_000) -> None:
        self._memory = OutcomeLru(max_entries)
        self._namespace = namespace
        self._redis: Any = None
        self._redis_loop: asyncio.AbstractEventLoop | None = None
        self._last_warning = 0.0

    def _key(self, digest: str) -> str:
        prefix = settings.CACHES.get("default", {}).get("KEY_PREFIX") or "gateway"
        return f"{prefix}:{self._namespace}:{digest}"

    def _client(self) -> Any:
        if not settings.REDIS_URL:
            return None
        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            # redis.asyncio connections belong to one event loop.
            from redis import asyncio as redis_asyncio

            self._redis = redis_asyncio.from_url(
                settings.REDIS_URL,
                socket_timeout=_REDIS_TIMEOUT,
                socket_connect_timeout=_REDIS_TIMEOUT,
            )
            self._redis_loop = loop
        return self._redis

    def _warn(self, action: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY:
            self._last_warning = now
            logger.warning(
                "principal cache: Redis %s failed (%s); using the in-process cache only",
                action,
                type(exc).__name__,
            )

    async def get(self, digest: str) -> Outcome | None:
        now = time.time()
        outcome = self._memory.get(digest, now)
        if outcome is not None:
            return outcome
        client = self._client()
        if client is None:
            return None
        try:
            raw = await client.get(self._key(digest))
        except Exception as exc:  # redis errors vary by cause; the answer must not depend on them
            self._warn("read", exc)
            return None
        if raw is None:
            return None
        try:
            outcome = Outcome.from_json(raw)
        except (ValueError, KeyError, TypeError):
            logger.warning("principal cache: ignoring an unreadable entry")
            return None
        if outcome.until <= now:
            return None
        self._memory.put(digest, outcome)
        return outcome

    async def put(self, digest: str, outcome: Outcome) -> None:
        ttl = outcome.until - time.time()
        if ttl <= 0:
            return
        self._memory.put(digest, outcome)
        client = self._client()
        if client is None:
            return
        try:
            await client.set(self._key(digest), outcome.to_json(), ex=max(1, math.ceil(ttl)))
        except Exception as exc:  # redis errors vary by cause; the answer must not depend on them
            self._warn("write", exc)

    def clear_local(self) -> None:
        self._memory.clear()

    def local_size(self) -> int:
        return len(self._memory)

    async def aclose(self) -> None:
        client, self._redis, self._redis_loop = self._redis, None, None
        if client is not None:
            try:
                await client.aclose()
            except Exception as exc:  # closing after a Redis outage must not fail shutdown
                self._warn("close", exc)
