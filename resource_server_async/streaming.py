"""The stream hub: chunks POSTed to the side channel reach the request that relays them.

A streaming Globus Compute task pushes its chunks to `/resource_server/api/streaming/...`
(CONTRACT.md §3). With several worker processes that POST may land on another process than the
client's connection, so with REDIS_URL the hub is a Redis Stream per task, read with a blocking
XREAD from where the reader left off (no polling, nothing re-read). Without Redis (one process)
it is an in-process queue per task. Either way a task's backlog is bounded in messages and in
bytes, a POST for a task that is not open (finished, timed out, unknown) is refused, and a
closed stream is released at once, so nothing piles up. With Redis each open stream reads on a
connection of its own, so a process opens at most STREAMING_REDIS_READERS streams at once.

Each task gets a token: an HMAC of its id and expiry time under SECRET_KEY. It is unguessable,
valid for that task only, and expires; any process can check it without shared state.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import enum
import functools
import hashlib
import hmac
import time
import weakref
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from resource_server_async.admission.redis_pipe import Script, ScriptPipe
from resource_server_async.admission.resp import Packed, bulk, packed_value
from resource_server_async.redis_blocking import BlockingConnection

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


@dataclass(frozen=True, slots=True)
class Backlog:
    """What one stream may hold for a slow reader: messages, and bytes of their text. A post
    that finds the backlog empty is taken whatever its size (the body limit bounds it), so a
    large post never wedges a stream."""

    messages: int
    bytes: int


class HubBusy(Exception):
    """This process already has as many streams open as it may read at once."""


# --- task tokens --------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _token_key(secret: str) -> bytes:
    """The key Django's salted_hmac derives from SECRET_KEY for the tokens' salt, made once
    per secret rather than per side-channel POST (the derivation was half the check's cost)."""
    return hashlib.sha256(_TOKEN_SALT.encode() + secret.encode()).digest()


def _signature(key: bytes, task_id: str, expires: int) -> str:
    # The same HMAC as salted_hmac(_TOKEN_SALT, ..., algorithm="sha256"), so that tokens
    # issued by any gateway process or version check here.
    return hmac.new(key, f"{task_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def issue_token(task_id: str, lifetime: float) -> str:
    expires = int(time.time() + lifetime)
    return f"{expires}.{_signature(_token_key(settings.SECRET_KEY), task_id, expires)}"


# Tokens whose signature was checked, per process: a stream's every chunk is a POST with the
# same token, and the HMAC was a third of the side channel's own handling of it (cProfile).
# Remembered only for ids of at most _REMEMBERED_ID_CHARS (the gateway's are uuid4s), so the
# table holds at most ~VERIFIED_TOKENS x 300 bytes whatever the POSTs carry.
VERIFIED_TOKENS = 1024
_REMEMBERED_ID_CHARS = 64
_SIGNATURE_CHARS = 64  # a SHA-256 HMAC in hex
# Seconds since 1970 in decimal: 10 digits until 2286. (int() refuses more than 4,300 digits.)
_EXPIRY_DIGITS = 12


@functools.lru_cache(maxsize=VERIFIED_TOKENS)
def _signed(key: bytes, task_id: str, expires: int, signature: str) -> bool:
    """Whether `signature` is the task's for this expiry under `key` (remembered: the same
    arguments always give the same answer; the key is part of them, so a new SECRET_KEY is
    checked afresh)."""
    expected = _signature(key, task_id, expires)
    return hmac.compare_digest(signature.encode(), expected.encode())


def token_matches(task_id: str, token: str) -> bool:
    expires_text, _, signature = token.partition(".")
    # isdigit() alone takes '²' and other non-ASCII digits, which int() then refuses.
    if not (expires_text.isascii() and expires_text.isdigit()) or not signature:
        return False
    if len(signature) != _SIGNATURE_CHARS or len(expires_text) > _EXPIRY_DIGITS:
        return False  # never a match, and not to be remembered
    expires = int(expires_text)
    signed = _signed if len(task_id) <= _REMEMBERED_ID_CHARS else _signed.__wrapped__
    # The signature first and always, so that the time taken does not tell expiry from forgery;
    # the expiry each time (a remembered signature does not extend a token's life).
    valid = signed(_token_key(settings.SECRET_KEY), task_id, expires, signature)
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
    def __init__(self, backlog: Backlog) -> None:
        self.backlog = backlog

    @abc.abstractmethod
    async def open(self, task_id: str, lifetime: float) -> Subscription:
        """Open a task's stream; it lives at most `lifetime` seconds. Raises HubBusy when the
        process may open no more."""

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
        # Each event with the bytes of its text, which held_bytes adds up.
        self.events: collections.deque[tuple[StreamEvent, int]] = collections.deque()
        self.held_bytes = 0
        self.expiry: asyncio.TimerHandle | None = None
        # The reader's wait, when it waits: a post resolves it directly. (asyncio.wait_for on
        # a Queue runs the wait in a task of its own: two more turns of the loop per event.)
        self._waiter: asyncio.Future[None] | None = None
        # Kept: asyncio.get_running_loop() makes a getpid() system call on Python 3.11.
        self._loop = asyncio.get_running_loop()

    def put(self, event: StreamEvent, size: int) -> None:
        self.held_bytes += size
        self.events.append((event, size))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _taken(self) -> StreamEvent:
        event, size = self.events.popleft()
        self.held_bytes -= size
        return event

    async def next(self, timeout: float) -> StreamEvent | None:
        if not self.events:
            loop = self._loop
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(timeout, _time_up, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            if not self.events:
                return None
        return self._taken()

    async def close(self) -> None:
        self._hub.forget(self)


def _time_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _size(event: StreamEvent) -> int:
    text = event.text
    # isascii() reads a flag the string carries: no copy for the usual all-ASCII chunk.
    return len(text) if text.isascii() else len(text.encode())


class LocalStreamHub(StreamHub):
    """In-process: only for one worker process (no REDIS_URL)."""

    def __init__(self, backlog: Backlog) -> None:
        super().__init__(backlog)
        self.streams: dict[str, _LocalSubscription] = {}

    async def open(self, task_id: str, lifetime: float) -> Subscription:
        subscription = _LocalSubscription(self, task_id, lifetime)
        self.streams[task_id] = subscription
        # Forgotten at the end of its life even if its reader never closes it (a request that
        # was dropped before its stream was read).
        subscription.expiry = subscription._loop.call_later(lifetime, self.forget, subscription)
        return subscription

    def forget(self, subscription: _LocalSubscription) -> None:
        # The timer holds the subscription (and its queue) until it fires: cancel it, or each
        # finished stream would stay in memory for its whole lifetime.
        if subscription.expiry is not None:
            subscription.expiry.cancel()
            subscription.expiry = None
        if self.streams.get(subscription.task_id) is subscription:
            del self.streams[subscription.task_id]

    async def publish(self, task_id: str, event: StreamEvent, *, bounded: bool = True) -> Published:
        subscription = self.streams.get(task_id)
        if subscription is None or subscription.expires <= time.monotonic():
            return Published.UNKNOWN
        size = _size(event)
        if bounded and self._full(subscription, size):
            return Published.FULL
        subscription.put(event, size)
        return Published.ACCEPTED

    def _full(self, subscription: _LocalSubscription, size: int) -> bool:
        held = subscription.held_bytes
        return len(subscription.events) >= self.backlog.messages or (
            held > 0 and held + size > self.backlog.bytes
        )


# Opens a stream: its first entry (whose id the reader starts after), the byte count, both
# with the stream's lifetime.
_OPEN_SCRIPT = """
local opened = redis.call('XADD', KEYS[1], '*', 'k', 'open', 't', '')
redis.call('SET', KEYS[2], 0, 'EX', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return opened
"""

# Appends only to a stream that exists (was opened, not closed, not expired) and is not full.
# KEYS[2] counts the bytes of text not yet taken by the reader (it lives and dies with KEYS[1]).
_PUBLISH_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local limit = tonumber(ARGV[1])
local size = string.len(ARGV[3])
if limit > 0 then
  if redis.call('XLEN', KEYS[1]) >= limit then return -1 end
  local held = tonumber(redis.call('GET', KEYS[2]))
  if held > 0 and held + size > tonumber(ARGV[4]) then return -1 end
end
redis.call('XADD', KEYS[1], '*', 'k', ARGV[2], 't', ARGV[3])
redis.call('INCRBY', KEYS[2], size)
return 1
"""

_CLOSE_SCRIPT = "return redis.call('DEL', KEYS[1], KEYS[2])"

_READ_COUNT = 256
_WRITE_TIMEOUT = 10.0  # seconds for a call on the writing connection
_PENDING_PER_READER = 4  # calls that may wait on the writing connection, per reader allowed


class _Lease:
    """The reading connection a subscription holds; given back to the hub's idle ones once."""

    __slots__ = ("connection",)

    def __init__(self) -> None:
        self.connection: BlockingConnection | None = None


class _RedisSubscription(Subscription):
    def __init__(self, hub: RedisStreamHub, task_id: str, after: bytes) -> None:
        super().__init__(task_id)
        self._hub = hub
        self._keys = hub.keys(task_id)
        self._after = after  # id of the last entry taken from Redis
        self._trimmed = after  # the stream holds nothing before this id
        self._commands = _ReadCommands(*self._keys)
        # Bytes taken into _events: still counted against the backlog until all are relayed,
        # so that what Redis and this process hold together stays under the bound.
        self._taken_bytes = 0
        self._events: collections.deque[StreamEvent] = collections.deque()
        self._lease = _Lease()
        # The stream's place among the hub's readers is given back once: on close, or when
        # the subscription is dropped without it (a request cancelled before its relay began).
        self._finalizer = weakref.finalize(self, hub.release_reader, self._lease)

    async def next(self, timeout: float) -> StreamEvent | None:
        if not self._events:
            await self._read(timeout)
        return self._events.popleft() if self._events else None

    async def _read(self, timeout: float) -> None:
        # One round trip: drop what was already taken (XLEN then counts only what waits, which
        # is what the backlog limit is about), and block until new entries or the timeout.
        # The trim is left out when nothing was taken since the last (a read that timed out).
        commands = self._commands
        after = bulk(self._after)
        packed, count = b"", 1
        if self._after != self._trimmed:
            packed, count = commands.trim + after, 2
        if self._taken_bytes:
            packed += commands.decrement + bulk(self._taken_bytes)
            count += 1
        packed += commands.read(max(1, int(timeout * 1000)), after)
        connection = self._lease.connection
        if connection is None:
            self._lease.connection = connection = await self._hub.reading_connection()
        replies = await connection.request_packed(packed, count, timeout + self._hub.read_margin)
        answer = replies[-1]
        self._trimmed = self._after
        self._taken_bytes = 0
        for _key, entries in answer or ():
            for entry_id, fields in entries:
                self._after = entry_id
                # Fields as written by the scripts: k <kind> t <text>.
                text: bytes = fields[3]
                self._taken_bytes += len(text)
                self._events.append(StreamEvent(fields[1].decode(), text.decode()))

    async def close(self) -> None:
        if not self._finalizer.alive:
            return
        self._finalizer()
        await self._hub.writer.call(_CLOSE, self._keys, ())


class _ReadCommands:
    """A stream's XTRIM, DECRBY and XREAD in RESP, their fixed parts packed once (the reader
    sends them for every chunk); each method's bytes lack only the arguments named."""

    __slots__ = ("_read_head", "_streams", "decrement", "trim")

    def __init__(self, key: str, counter: str) -> None:
        self.trim = b"*4\r\n" + b"".join(map(bulk, ("XTRIM", key, "MINID")))  # + the min id
        self.decrement = b"*3\r\n" + bulk("DECRBY") + bulk(counter)  # + the bytes taken
        self._read_head = b"*8\r\n" + b"".join(map(bulk, ("XREAD", "COUNT", _READ_COUNT, "BLOCK")))
        self._streams = bulk("STREAMS") + bulk(key)

    def read(self, block_ms: int, after: bytes) -> bytes:
        """XREAD of up to _READ_COUNT entries after `after` (packed), blocking `block_ms`."""
        return self._read_head + bulk(block_ms) + self._streams + after


_OPEN = Script(_OPEN_SCRIPT)
_PUBLISH = Script(_PUBLISH_SCRIPT)
_CLOSE = Script(_CLOSE_SCRIPT)


class RedisStreamHub(StreamHub):
    """Redis Streams: any worker process may receive a task's POSTs.

    Opening, publishing and closing are one script call each on one pipelined connection
    (admission's ScriptPipe: the calls of one turn of the loop go out in one write), which holds
    at most 4 x STREAMING_REDIS_READERS calls waiting. Each open stream blocks in XREAD on a
    reading connection of its own, so streams open at once are capped (open() raises HubBusy
    beyond); connections of closed streams are kept for the next ones, as many as the cap.
    """

    def __init__(self, url: str, prefix: str, backlog: Backlog, readers: int) -> None:
        super().__init__(backlog)
        from redis.asyncio.connection import parse_url

        self._prefix = prefix
        self.writer = ScriptPipe(
            url, timeout=_WRITE_TIMEOUT, max_pending=_PENDING_PER_READER * readers
        )
        self.readers = readers
        self.open_streams = 0
        self._options: dict[str, Any] = dict(parse_url(url))
        self._idle: list[BlockingConnection] = []
        self.connections = 0  # reading connections, idle or not: at most `readers`
        # A blocking read may take its whole timeout; Redis is given this much more to answer.
        self.read_margin = _WRITE_TIMEOUT

    def keys(self, task_id: str) -> tuple[str, str]:
        """The stream's entries, and the count of bytes they hold."""
        key = f"{self._prefix}stream:{task_id}"
        return key, f"{key}:bytes"

    async def open(self, task_id: str, lifetime: float) -> Subscription:
        if self.open_streams >= self.readers:
            raise HubBusy(f"{self.open_streams} streams are open in this process")
        self.open_streams += 1
        try:
            return await self._open(task_id, lifetime)
        except BaseException:
            self.open_streams -= 1
            raise

    async def reading_connection(self) -> BlockingConnection:
        while self._idle:
            connection = self._idle.pop()
            if connection.idle:
                return connection
            self.connections -= 1  # Redis closed it meanwhile
        connection = await BlockingConnection.open(self._options, _WRITE_TIMEOUT)
        self.connections += 1
        return connection

    def release_reader(self, lease: _Lease) -> None:
        self.open_streams -= 1
        connection, lease.connection = lease.connection, None
        if connection is None:
            return
        # A read still under way (its request cancelled) would answer later: not reusable.
        if connection.idle and len(self._idle) < self.readers:
            self._idle.append(connection)
        else:
            connection.close()
            self.connections -= 1

    async def _open(self, task_id: str, lifetime: float) -> Subscription:
        opened = await self.writer.call(_OPEN, self.keys(task_id), (max(1, int(lifetime)),))
        return _RedisSubscription(self, task_id, opened)

    async def publish(self, task_id: str, event: StreamEvent, *, bounded: bool = True) -> Published:
        limit = self.backlog.messages + 1 if bounded else 0  # +1: the reader's last entry stays
        key, counter = self.keys(task_id)
        # Packed here: ScriptPipe remembers the arguments it packs (they repeat in admission's
        # calls), which must not hold every chunk's text (up to STREAMING_MAX_BODY_BYTES each).
        arguments = b"".join(map(packed_value, (2, key, counter, limit, event.kind)))
        arguments += bulk(event.text) + packed_value(self.backlog.bytes)
        answer = await self.writer.call(_PUBLISH, (), Packed(7, arguments))
        return {1: Published.ACCEPTED, -1: Published.FULL}.get(int(answer), Published.UNKNOWN)

    async def close(self) -> None:
        await self.writer.close()
        for connection in self._idle:
            connection.close()
        self.connections -= len(self._idle)
        self._idle.clear()


def build_hub() -> StreamHub:
    """The hub the settings ask for (the runtime builds one and owns it: runtime.current.hub)."""
    backlog = Backlog(settings.STREAMING_BACKLOG, settings.STREAMING_BACKLOG_BYTES)
    if settings.REDIS_URL:
        prefix = settings.CACHES["default"].get("KEY_PREFIX") or "gateway"
        return RedisStreamHub(
            settings.REDIS_URL,
            f"{prefix}:",
            backlog,
            settings.STREAMING_REDIS_READERS,
        )
    return LocalStreamHub(backlog)
