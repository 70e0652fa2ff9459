"""The stream hub: chunks POSTed to the side channel reach the request that relays them.

A streaming Globus Compute task pushes its chunks to `/resource_server/api/streaming/...`
(CONTRACT.md §3). With several worker processes that POST may land on another process than the
client's connection, so with REDIS_URL the hub is a Redis Stream per task, read with a blocking
XREAD from where the reader left off (no polling, nothing re-read). Without Redis (one process)
it is an in-process queue per task. Either way a task's backlog is bounded, and a POST for a
task that is not open (finished, timed out, unknown) is refused, so nothing piles up.

Each task gets a token: an HMAC of its id and expiry time under SECRET_KEY. It is unguessable,
valid for that task only, and expires; any process can check it without shared state.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import enum
import hmac
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

from resource_server_async.lifecycle import on_shutdown

# Kinds of events. "finished" is posted by the gateway itself when the task's result arrives.
DATA = "data"
ERROR = "error"
DONE = "done"
FINISHED = "finished"

_TOKEN_SALT = "resource_server_async.streaming.task-token"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    kind: str
    text: str = ""


class Published(enum.Enum):
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"  # no open stream with this id (closed, expired, never opened)
    FULL = "full"  # the reader is behind by the whole backlog; try again shortly


# --- task tokens --------------------------------------------------------------------------


def _signature(task_id: str, expires: int) -> str:
    return salted_hmac(_TOKEN_SALT, f"{task_id}.{expires}", algorithm="sha256").hexdigest()


def issue_token(task_id: str, lifetime: float) -> str:
    expires = int(time.time() + lifetime)
    return f"{expires}.{_signature(task_id, expires)}"


def token_matches(task_id: str, token: str) -> bool:
    expires_text, _, signature = token.partition(".")
    if not expires_text.isdigit() or not signature:
        return False
    expires = int(expires_text)
    # Compare first and always, so that the time taken does not tell expiry from forgery.
    valid = hmac.compare_digest(signature.encode(), _signature(task_id, expires).encode())
    return valid and expires > time.time()


# --- the hub ------------------------------------------------------------------------------


class Subscription(abc.ABC):
    """The reading end of one task's stream. Only its own request reads it."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id

    @abc.abstractmethod
    async def next(self, timeout: float) -> StreamEvent | None:
        """The next event, or None if none arrived within `timeout` seconds."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop the stream: later POSTs for it are refused."""


class StreamHub(abc.ABC):
    def __init__(self, backlog: int) -> None:
        self.backlog = backlog

    @abc.abstractmethod
    async def open(self, task_id: str, lifetime: float) -> Subscription:
        """Open a task's stream; it lives at most `lifetime` seconds."""

    @abc.abstractmethod
    async def publish(self, task_id: str, event: StreamEvent, *, bounded: bool = True) -> Published:
        """Append an event to an open stream. The gateway's own events are not `bounded`."""

    async def close(self) -> None:
        """Release connections at shutdown."""


class _LocalSubscription(Subscription):
    def __init__(self, hub: LocalStreamHub, task_id: str, lifetime: float) -> None:
        super().__init__(task_id)
        self._hub = hub
        self.expires = time.monotonic() + lifetime
        self.events: asyncio.Queue[StreamEvent] = asyncio.Queue()

    async def next(self, timeout: float) -> StreamEvent | None:
        if not self.events.empty():
            return self.events.get_nowait()
        try:
            return await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            return None

    async def close(self) -> None:
        self._hub.streams.pop(self.task_id, None)


class LocalStreamHub(StreamHub):
    """In-process: only for one worker process (no REDIS_URL)."""

    def __init__(self, backlog: int) -> None:
        super().__init__(backlog)
        self.streams: dict[str, _LocalSubscription] = {}

    async def open(self, task_id: str, lifetime: float) -> Subscription:
        subscription = _LocalSubscription(self, task_id, lifetime)
        self.streams[task_id] = subscription
        # Forgotten at the end of its life even if its reader never closes it (a request that
        # was dropped before its stream was read).
        asyncio.get_running_loop().call_later(lifetime, self._expire, subscription)
        return subscription

    def _expire(self, subscription: _LocalSubscription) -> None:
        if self.streams.get(subscription.task_id) is subscription:
            del self.streams[subscription.task_id]

    async def publish(self, task_id: str, event: StreamEvent, *, bounded: bool = True) -> Published:
        subscription = self.streams.get(task_id)
        if subscription is None or subscription.expires <= time.monotonic():
            return Published.UNKNOWN
        if bounded and subscription.events.qsize() >= self.backlog:
            return Published.FULL
        subscription.events.put_nowait(event)
        return Published.ACCEPTED


# Appends only to a stream that exists (was opened, not closed, not expired) and is not full.
_PUBLISH_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local limit = tonumber(ARGV[1])
if limit > 0 and redis.call('XLEN', KEYS[1]) >= limit then return -1 end
redis.call('XADD', KEYS[1], '*', 'k', ARGV[2], 't', ARGV[3])
return 1
"""
_READ_COUNT = 256


class _RedisSubscription(Subscription):
    def __init__(self, hub: RedisStreamHub, task_id: str, key: str, after: bytes) -> None:
        super().__init__(task_id)
        self._hub = hub
        self._key = key
        self._after = after  # id of the last entry taken from Redis
        self._events: collections.deque[StreamEvent] = collections.deque()

    async def next(self, timeout: float) -> StreamEvent | None:
        if not self._events:
            await self._read(timeout)
        return self._events.popleft() if self._events else None

    async def _read(self, timeout: float) -> None:
        # One round trip: drop what was already taken (XLEN then counts only what waits, which
        # is what the backlog limit is about), and block until new entries or the timeout.
        pipe = self._hub.reader.pipeline(transaction=False)
        pipe.xtrim(self._key, minid=self._after, approximate=False)
        pipe.xread({self._key: self._after}, count=_READ_COUNT, block=max(1, int(timeout * 1000)))
        _, answer = await pipe.execute()
        for _key, entries in answer or ():
            for entry_id, fields in entries:
                self._after = entry_id
                self._events.append(
                    StreamEvent(fields[b"k"].decode(), fields.get(b"t", b"").decode())
                )

    async def close(self) -> None:
        await self._hub.writer.delete(self._key)


class RedisStreamHub(StreamHub):
    """Redis Streams: any worker process may receive a task's POSTs."""

    def __init__(self, url: str, prefix: str, backlog: int, longest_wait: float) -> None:
        super().__init__(backlog)
        import redis.asyncio as redis

        self._prefix = prefix
        self.writer: Any = redis.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30
        )
        # Blocking reads wait up to the longest stream timeout: their socket must wait longer.
        self.reader: Any = redis.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=longest_wait + 10
        )
        self._publish = self.writer.register_script(_PUBLISH_SCRIPT)

    def _key(self, task_id: str) -> str:
        return f"{self._prefix}stream:{task_id}"

    async def open(self, task_id: str, lifetime: float) -> Subscription:
        key = self._key(task_id)
        pipe = self.writer.pipeline(transaction=True)
        pipe.xadd(key, {"k": "open", "t": ""})
        pipe.expire(key, max(1, int(lifetime)))
        opened, _ = await pipe.execute()
        return _RedisSubscription(self, task_id, key, opened)

    async def publish(self, task_id: str, event: StreamEvent, *, bounded: bool = True) -> Published:
        limit = self.backlog + 1 if bounded else 0  # +1: the entry the reader last took stays
        answer = await self._publish(
            keys=[self._key(task_id)], args=[limit, event.kind, event.text]
        )
        return {1: Published.ACCEPTED, -1: Published.FULL}.get(int(answer), Published.UNKNOWN)

    async def close(self) -> None:
        await self.writer.aclose()
        await self.reader.aclose()


def build_hub() -> StreamHub:
    if settings.REDIS_URL:
        prefix = settings.CACHES["default"].get("KEY_PREFIX") or "gateway"
        return RedisStreamHub(
            settings.REDIS_URL,
            f"{prefix}:",
            settings.STREAMING_BACKLOG,
            max(settings.STREAMING_FIRST_CHUNK_TIMEOUT, settings.STREAMING_IDLE_TIMEOUT),
        )
    return LocalStreamHub(settings.STREAMING_BACKLOG)


_current: tuple[asyncio.AbstractEventLoop, StreamHub] | None = None


def get_hub() -> StreamHub:
    """The process's hub; connections belong to a loop, so another loop gets a new hub."""
    global _current
    loop = asyncio.get_running_loop()
    if _current is None or _current[0] is not loop:
        _current = (loop, build_hub())
        on_shutdown(close_hub)
    return _current[1]


async def close_hub() -> None:
    global _current
    current, _current = _current, None
    if current is not None:
        await current[1].close()
