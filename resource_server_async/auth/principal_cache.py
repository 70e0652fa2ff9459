"""Validated principals (and recent denials) by the SHA-256 of the token: Redis and in-process."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from cachetools import TLRUCache
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


# Expired entries are never returned; the LRU bound evicts the least recently used first.
OutcomeCache = TLRUCache[str, Outcome]


def _expiry(key: str, outcome: Outcome, now: float) -> float:
    return outcome.until


def outcome_cache(max_entries: int, clock: Callable[[], float] = time.time) -> OutcomeCache:
    """A bounded LRU of outcomes, each kept until its own `until` (also used by API keys)."""
    return TLRUCache(maxsize=max_entries, ttu=_expiry, timer=clock)


def remember(cache: OutcomeCache, key: str, outcome: Outcome) -> None:
    # A zero-sized cache (a setting of 0) remembers nothing; cachetools would refuse the item.
    if cache.maxsize > 0:
        cache[key] = outcome


class PrincipalCache:
    """In-process LRU in front of Redis (when REDIS_URL is set), shared by all workers.

    Entries never change before they expire, so a worker may keep a copy read from Redis until
    the same expiry; Redis only saves the other workers a trip to Globus. Built by the runtime,
    so its Redis client serves the runtime's event loop only.
    """

    def __init__(
        self, namespace: str = "auth:globus", max_entries: int = 10_000, redis_url: str = ""
    ) -> None:
        self._memory = outcome_cache(max_entries)
        self._namespace = namespace
        self._redis: Any = None
        if redis_url:
            from redis import asyncio as redis_asyncio

            # Connects on first use; nothing here touches the network.
            self._redis = redis_asyncio.from_url(
                redis_url, socket_timeout=_REDIS_TIMEOUT, socket_connect_timeout=_REDIS_TIMEOUT
            )
        self._last_warning = 0.0

    def _key(self, digest: str) -> str:
        prefix = settings.CACHES.get("default", {}).get("KEY_PREFIX") or "gateway"
        return f"{prefix}:{self._namespace}:{digest}"

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
        outcome: Outcome | None = self._memory.get(digest)
        if outcome is not None or self._redis is None:
            return outcome
        try:
            raw = await self._redis.get(self._key(digest))
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
        if outcome.until <= time.time():
            return None
        remember(self._memory, digest, outcome)
        return outcome

    async def put(self, digest: str, outcome: Outcome) -> None:
        ttl = outcome.until - time.time()
        if ttl <= 0:
            return
        remember(self._memory, digest, outcome)
        if self._redis is None:
            return
        try:
            await self._redis.set(self._key(digest), outcome.to_json(), ex=max(1, math.ceil(ttl)))
        except Exception as exc:  # redis errors vary by cause; the answer must not depend on them
            self._warn("write", exc)

    def forget_local(self, digest: str) -> None:
        self._memory.pop(digest, None)

    def clear_local(self) -> None:
        self._memory.clear()

    def local_size(self) -> int:
        # Expired entries still count until the cache next evicts: drop them first.
        self._memory.expire()
        return len(self._memory)

    async def aclose(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            try:
                await client.aclose()
            except Exception as exc:  # closing after a Redis outage must not fail shutdown
                self._warn("close", exc)
