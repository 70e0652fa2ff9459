"""The stream hub: chunks POSTed to the side channel reach the request that relays them.

A streaming Globus Compute task pushes its chunks to `/resource_server/api/streaming/...`
(CONTRACT.md §3). With several worker processes that POST may land on another process than the
client's connection, so with REDIS_URL each event is published by a script on Redis to the
stream's channel, which the reading process alone subscribes to (one subscribing connection
per process for all its streams: nothing is sent per chunk to read it). Without Redis (one
process) it is an in-process queue per task. Either way a task's backlog is bounded in
messages and in bytes, a POST for a task that is not open (finished, timed out, unknown) is
refused, and a closed stream is released at once, so nothing piles up. A process opens at most
STREAMING_REDIS_READERS streams at once.

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
from resource_server_async.redis_pubsub import RedisReadFailed, Subscriber

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


# A stream is one hash with the lifetime of the stream: messages and bytes of text published
# (n, p) and taken by the reader (m, t). Its events go to the reader as messages on the
# stream's channel (redis_pubsub.py), which only the reading process subscribes to.
_OPEN_SCRIPT = """
redis.call('HSET', KEYS[1], 'n', 0, 'p', 0, 'm', 0, 't', 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

# taken(key, messages, bytes): what the reader has taken, as totals ('' for nothing new), so
# that a count told twice or late changes nothing.
_TAKEN_LUA = """
local function taken(key, messages, bytes)
  if messages ~= '' and tonumber(messages) > tonumber(redis.call('HGET', key, 'm')) then
    redis.call('HSET', key, 'm', messages, 't', bytes)
  end
end
"""

# Appends only to a stream that is open (opened, not closed, not expired, its reader
# subscribed) and not full; the publishing process's reader's acknowledgement rides along.
_PUBLISH_SCRIPT = (
    _TAKEN_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
taken(KEYS[1], ARGV[5], ARGV[6])
local limit = tonumber(ARGV[1])
local size = string.len(ARGV[3])
if limit > 0 then
  local counts = redis.call('HMGET', KEYS[1], 'n', 'p', 'm', 't')
  if tonumber(counts[1]) - tonumber(counts[3]) >= limit then return -1 end
  local held = tonumber(counts[2]) - tonumber(counts[4])
  if held > 0 and held + size > tonumber(ARGV[4]) then return -1 end
end
if redis.call('PUBLISH', KEYS[2], ARGV[2] .. ' ' .. ARGV[3]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HINCRBY', KEYS[1], 'p', size)
return 1
"""
)

_TAKEN_SCRIPT = (
    _TAKEN_LUA
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then taken(KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""
)

_CLOSE_SCRIPT = "return redis.call('DEL', KEYS[1])"

_WRITE_TIMEOUT = 10.0  # seconds for a call on the writing connection, or a subscription
_PENDING_PER_READER = 4  # calls that may wait on the writing connection, per reader allowed
_KINDS = {kind.encode(): kind for kind in (DATA, ERROR, DONE, FINISHED)}


class _Inbox:
    """Where a stream's messages land as they arrive, and the reader's wait for them (the
    hub's table of channels holds this, not the subscription, so that a subscription dropped
    without close is collected and gives its place back)."""

    __slots__ = (
        "events",
        "failure",
        "taken_bytes",
        "taken_messages",
        "told_bytes",
        "told_messages",
        "waiter",
    )

    def __init__(self) -> None:
        self.events: collections.deque[tuple[StreamEvent, int]] = collections.deque()
        self.failure: RedisReadFailed | None = None
        self.waiter: asyncio.Future[None] | None = None
        # Taken by the reader (totals), and how much of it Redis was told.
        self.taken_messages = self.taken_bytes = 0
        self.told_messages = self.told_bytes = 0

    def told(self) -> tuple[int | str, int | str]:
        """What the reader took since Redis was last told (totals), or ('', ''); Redis is
        now told (by the call this goes into)."""
        if self.taken_messages == self.told_messages:
            return "", ""
        self.told_messages, self.told_bytes = self.taken_messages, self.taken_bytes
        return self.taken_messages, self.taken_bytes

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put(self, payload: bytes) -> None:
        # Published as '<kind> <text>'.
        kind, _, text = payload.partition(b" ")
        self.events.append(
            (StreamEvent(_KINDS.get(kind) or kind.decode(), text.decode()), len(text))
        )
        self.wake()

    def fail(self, error: RedisReadFailed) -> None:
        self.failure = error
        self.wake()


class _RedisSubscription(Subscription):
    def __init__(self, hub: RedisStreamHub, task_id: str, inbox: _Inbox) -> None:
        super().__init__(task_id)
        self._hub = hub
        self._key, self._channel = hub.keys(task_id)
        self._inbox = inbox
        self._loop = asyncio.get_running_loop()
        # The stream's place among the hub's readers is given back once: on close, or when
        # the subscription is dropped without it (a request cancelled before its relay began).
        self._finalizer = weakref.finalize(self, hub.forget, self._channel)

    async def next(self, timeout: float) -> StreamEvent | None:
        inbox = self._inbox
        if not inbox.events:
            if inbox.failure is not None:
                raise inbox.failure
            inbox.waiter = waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout, _time_up, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                inbox.waiter = None
            if not inbox.events:
                if inbox.failure is not None:
                    raise inbox.failure
                return None
        event, size = inbox.events.popleft()
        inbox.taken_messages += 1
        inbox.taken_bytes += size
        self._hub.taken(self._key, inbox)
        return event

    async def close(self) -> None:
        if not self._finalizer.alive:
            return
        self._finalizer()
        await self._hub.writer.call(_CLOSE, (self._key,), ())


_OPEN = Script(_OPEN_SCRIPT)
_PUBLISH = Script(_PUBLISH_SCRIPT)
_TAKEN = Script(_TAKEN_SCRIPT)
_CLOSE = Script(_CLOSE_SCRIPT)


class RedisStreamHub(StreamHub):
    """Redis: any worker process may receive a task's POSTs.

    Opening, publishing and closing are one script call each on one pipelined connection
    (admission's ScriptPipe: the calls of one turn of the loop go out in one write), which holds
    at most 4 x STREAMING_REDIS_READERS calls waiting. A publish's event reaches the reading
    process as a message on the stream's channel, to which that process's one subscribing
    connection is subscribed while the stream is open; the reader sends nothing per chunk.
    What the reader took is told to Redis with the next publish from its own process (the
    usual case: one worker, or the POSTs landing where the client is), or on its own once half
    the backlog was taken untold, so the backlog bound counts what the reader has not taken.
    Streams open at once per process are capped (open() raises HubBusy beyond). A lost
    subscribing connection fails the streams open on it (their messages are gone). What waits
    in Redis for a process that stopped reading its connection is bounded by Redis's
    client-output-buffer-limit for pubsub (32 MB by default), past which Redis drops it.
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
        self.subscriber: Subscriber | None = None
        self._subscribing: asyncio.Task[Subscriber] | None = None
        self._inboxes: dict[bytes, _Inbox] = {}  # by channel: the streams read here
        # Told on its own past these (half the backlog), so the bound never refuses early by
        # more than half of it when the POSTs land on another process.
        self._tell_messages = max(1, backlog.messages // 2)
        self._tell_bytes = max(1, backlog.bytes // 2)

    def keys(self, task_id: str) -> tuple[str, bytes]:
        """The stream's counts (a hash), and the channel its events are published to."""
        key = f"{self._prefix}stream:{task_id}"
        return key, f"{key}:events".encode()

    async def open(self, task_id: str, lifetime: float) -> Subscription:
        if self.open_streams >= self.readers:
            raise HubBusy(f"{self.open_streams} streams are open in this process")
        self.open_streams += 1
        try:
            return await self._open(task_id, lifetime)
        except BaseException:
            self.open_streams -= 1
            raise

    async def _open(self, task_id: str, lifetime: float) -> Subscription:
        key, channel = self.keys(task_id)
        subscriber = await self._subscribed()
        inbox = self._inboxes[channel] = _Inbox()
        # Both in this turn: no POST can come before open() returns (the task is sent after).
        subscribed = subscriber.subscribe(channel)
        opened = self.writer.call(_OPEN, (key,), (max(1, int(lifetime)),))
        try:
            async with asyncio.timeout(_WRITE_TIMEOUT):
                await asyncio.gather(subscribed, opened)
        except BaseException:
            self._inboxes.pop(channel, None)
            subscriber.unsubscribe(channel)
            for call in (subscribed, opened):
                call.cancel()  # if still waiting; a failure of either is retrieved here
                _retrieve(call)
            raise
        return _RedisSubscription(self, task_id, inbox)

    async def _subscribed(self) -> Subscriber:
        """The subscribing connection, connected once for every stream (again after a loss)."""
        if self.subscriber is not None and self.subscriber.connected:
            return self.subscriber
        if self._subscribing is None:
            self._subscribing = asyncio.get_running_loop().create_task(
                Subscriber.open(self._options, _WRITE_TIMEOUT, self._received, self._lost)
            )
        subscribing = self._subscribing
        try:
            self.subscriber = await asyncio.shield(subscribing)
        finally:
            if self._subscribing is subscribing and subscribing.done():
                self._subscribing = None
        return self.subscriber

    def _received(self, channel: bytes, payload: bytes) -> None:
        inbox = self._inboxes.get(channel)
        if inbox is not None:  # else a stream closed while its last events were on the way
            inbox.put(payload)

    def _lost(self, error: RedisReadFailed) -> None:
        if self.subscriber is not None and self.subscriber.connected:
            return  # a connection that never served (refused at AUTH): nothing was on it
        # Every stream open here was subscribed on the connection lost; the next ones get a
        # new connection.
        for inbox in self._inboxes.values():
            inbox.fail(error)
        self._inboxes.clear()
        self.subscriber = None

    def taken(self, key: str, inbox: _Inbox) -> None:
        """The reader took an event: told to Redis on its own only past half the backlog."""
        if (
            inbox.taken_messages - inbox.told_messages >= self._tell_messages
            or inbox.taken_bytes - inbox.told_bytes >= self._tell_bytes
        ):
            # The totals packed here, as a publish's are: unique, not for ScriptPipe's table.
            messages, size = inbox.told()
            arguments = packed_value(1) + packed_value(key) + bulk(messages) + bulk(size)
            self.writer.call(_TAKEN, (), Packed(4, arguments)).add_done_callback(_retrieve)

    def forget(self, channel: bytes) -> None:
        """A stream's end in this process (closed, or dropped without close)."""
        self.open_streams -= 1
        if self._inboxes.pop(channel, None) is not None and self.subscriber is not None:
            self.subscriber.unsubscribe(channel)

    async def publish(self, task_id: str, event: StreamEvent, *, bounded: bool = True) -> Published:
        limit = self.backlog.messages if bounded else 0
        key, channel = self.keys(task_id)
        inbox = self._inboxes.get(channel)  # the stream's reader is in this process
        told = inbox.told() if inbox is not None else ("", "")
        # Packed here: ScriptPipe remembers the arguments it packs (they repeat in admission's
        # calls), which must not hold every chunk's text (up to STREAMING_MAX_BODY_BYTES each).
        arguments = b"".join(map(packed_value, (2, key, channel, limit, event.kind)))
        arguments += bulk(event.text) + packed_value(self.backlog.bytes)
        arguments += bulk(told[0]) + bulk(told[1])
        answer = await self.writer.call(_PUBLISH, (), Packed(9, arguments))
        return {1: Published.ACCEPTED, -1: Published.FULL}.get(int(answer), Published.UNKNOWN)

    async def close(self) -> None:
        await self.writer.close()
        if self._subscribing is not None:
            self._subscribing.cancel()
        if self.subscriber is not None:
            self.subscriber.close()
            self.subscriber = None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


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
