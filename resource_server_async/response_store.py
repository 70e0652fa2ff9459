"""The optional store of Responses conversations, for `previous_response_id` (off by default).

A stored response is its conversation as Responses items (the input it was given, with what
it continued, and its output) and the principal that created it: only that principal may
continue it. Bounded three ways: RESPONSES_STORE_MAX_ENTRIES responses (beyond, in Redis the
least recently stored go first; in a process, the least recently used: continuing one is a
use), RESPONSES_STORE_MAX_BYTES per response (a larger one is not stored) and
RESPONSES_STORE_TTL seconds. With REDIS_URL it is in Redis, so that every worker process sees
what any of them stored; otherwise in this process (an LRU with a TTL).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from cachetools import TTLCache
from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    owner: str  # Principal.id
    items: list[dict[str, Any]]


class ResponseStore(Protocol):
    async def save(self, response_id: str, owner: str, items: list[dict[str, Any]]) -> bool:
        """Keep the conversation; False when it is over the size bound (then not kept)."""
        ...

    async def load(self, response_id: str) -> StoredResponse | None: ...

    async def close(self) -> None: ...


def _encoded(response_id: str, owner: str, items: list[dict[str, Any]]) -> bytes | None:
    data = orjson.dumps({"owner": owner, "items": items})
    if len(data) > settings.RESPONSES_STORE_MAX_BYTES:
        logger.warning(
            "response store: %s not stored: %d bytes, over RESPONSES_STORE_MAX_BYTES (%d)",
            response_id,
            len(data),
            settings.RESPONSES_STORE_MAX_BYTES,
        )
        return None
    return data


def _decoded(data: bytes | None) -> StoredResponse | None:
    if data is None:
        return None
    value = orjson.loads(data)
    return StoredResponse(owner=value["owner"], items=value["items"])


class MemoryResponseStore:
    """One process's store: an LRU of encoded conversations whose entries expire."""

    def __init__(self, max_entries: int, ttl: float) -> None:
        self._entries: TTLCache[str, bytes] = TTLCache(maxsize=max_entries, ttl=ttl)

    async def save(self, response_id: str, owner: str, items: list[dict[str, Any]]) -> bool:
        data = _encoded(response_id, owner, items)
        if data is None:
            return False
        self._entries[response_id] = data
        return True

    async def load(self, response_id: str) -> StoredResponse | None:
        return _decoded(self._entries.get(response_id))

    async def close(self) -> None:
        self._entries.clear()


# Store one conversation, drop what expired from the index, and the oldest beyond the bound.
# KEYS[1] the index (a sorted set of ids by time stored); ARGV: id, data, ttl, now, max
# entries, key prefix of the entries.
_SAVE = """
redis.call('SET', ARGV[6] .. ARGV[1], ARGV[2], 'EX', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[4]) - tonumber(ARGV[3]))
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #oldest, 2 do redis.call('DEL', ARGV[6] .. oldest[i]) end
end
return 1
"""


class RedisResponseStore:
    """The store shared by every worker process, in Redis."""

    def __init__(self, url: str, prefix: str, max_entries: int, ttl: int) -> None:
        import redis.asyncio as redis

        self._redis: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._index = f"{prefix}:responses:index"
        self._prefix = f"{prefix}:responses:item:"
        self._max_entries = max_entries
        self._ttl = ttl
        self._save = self._redis.register_script(_SAVE)

    async def save(self, response_id: str, owner: str, items: list[dict[str, Any]]) -> bool:
        data = _encoded(response_id, owner, items)
        if data is None:
            return False
        await self._save(
            keys=[self._index],
            args=[response_id, data, self._ttl, time.time(), self._max_entries, self._prefix],
        )
        return True

    async def load(self, response_id: str) -> StoredResponse | None:
        return _decoded(await self._redis.get(self._prefix + response_id))

    async def close(self) -> None:
        await self._redis.aclose()


def build_store() -> ResponseStore:
    """The store the settings ask for (only called when RESPONSES_STORE is on)."""
    if settings.REDIS_URL:
        return RedisResponseStore(
            settings.REDIS_URL,
            settings.CACHES["default"].get("KEY_PREFIX") or "gateway",
            settings.RESPONSES_STORE_MAX_ENTRIES,
            settings.RESPONSES_STORE_TTL,
        )
    return MemoryResponseStore(settings.RESPONSES_STORE_MAX_ENTRIES, settings.RESPONSES_STORE_TTL)
