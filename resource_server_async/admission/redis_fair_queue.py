"""Endpoint capacity and its fair queue shared by every worker and host: Lua scripts on Redis.

The rules are fair_queue.py's (start-time fair queueing across projects, priority then arrival
within one), kept in Redis so that every gateway process serves one queue per endpoint. Each
step (enter, leave, has_room) is one script, atomic on the server; a script that frees a slot
also grants it to the next waiter and PUBLISHes that waiter's ticket. Each process listens on
one pub/sub connection and wakes its own waiter: no polling. A slot whose holder died frees
itself after LIMITS_SLOT_LEASE_SECONDS; a waiter whose process died is dropped at its
deadline (its wait, plus a margin).

Keys per endpoint (LIMITS_REDIS_PREFIX + "fs:" + slug + ":"): `held` (ticket -> lease end),
`queue` (one sorted set ordered by name: "project NUL rank seq NUL ticket", so a project's
head is a ZRANGEBYLEX away), `deadlines` (member -> end of its wait), `tickets` (ticket ->
member), `active` (project -> its tag), `weights` (project -> weight), `state` (virtual time
`v`, arrival counter `n`). One Redis, not Redis Cluster (a script touches several keys).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from resource_server_async.admission.capacity import Place, QueueFull
from resource_server_async.admission.limiter import LimiterUnavailable
from resource_server_async.admission.redis_scripts import PAUSE_AFTER_FAILURE, RedisScripts
from resource_server_async.admission.ticket import warn_rarely

logger = logging.getLogger(__name__)

_PRELUDE = r"""
local held, queue, deadlines, active, weights, state, tickets, holders, reserved =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function head_of(project)
  local first = redis.call('ZRANGEBYLEX', queue, '[' .. project .. '\0', '(' .. project .. '\1',
    'LIMIT', 0, 1)
  return first[1]
end

local function expire_all(lease)
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], lease) end
end

local function hold(member, project, ends)
  redis.call('ZADD', held, ends, member)
  redis.call('HSET', holders, member, project)
end

-- A slot ends: its request's release, its lease, or a reservation's grace.
local function drop_held(member)
  local project = redis.call('HGET', holders, member)
  redis.call('ZREM', held, member)
  redis.call('HDEL', holders, member)
  if project and redis.call('HGET', reserved, project) == member then
    redis.call('HDEL', reserved, project)
  end
end

-- Drop waiters past their deadline and slots past their lease, then grant free slots in fair
-- order: the project with the smallest tag, its first waiter; the tag grows by 1 / weight.
local function dispatch(limit, lease, channel)
  local gone = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now)
  for _, member in ipairs(gone) do
    redis.call('ZREM', queue, member)
    redis.call('HDEL', tickets, string.sub(member, string.find(member, '\0', 1, true) + 15))
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', deadlines, '-inf', now) end
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', held, '-inf', now)) do
    drop_held(member)
  end
  while redis.call('ZCARD', held) < limit do
    local top = redis.call('ZRANGE', active, 0, 0, 'WITHSCORES')
    if #top == 0 then break end
    local project, tag = top[1], tonumber(top[2])
    local member = head_of(project)
    if member then
      redis.call('ZREM', queue, member)
      redis.call('ZREM', deadlines, member)
      local ticket = string.sub(member, #project + 16)
      redis.call('HDEL', tickets, ticket)
      hold(ticket, project, now + lease)
      redis.call('HSET', state, 'v', tag)
      redis.call('PUBLISH', channel, ticket)
    end
    if member and head_of(project) then
      local weight = tonumber(redis.call('HGET', weights, project) or '1')
      redis.call('ZADD', active, tag + 1 / weight, project)
    else
      redis.call('ZREM', active, project)
      redis.call('HDEL', weights, project)
    end
  end
end
"""

# ARGV: ticket, limit, lease (ms), channel, project, weight, rank, max queued, max queued per
# project, wait (ms). Returns 1 granted, 0 queued, -1 queue full, -2 project's share full.
_ENTER = (
    _PRELUDE
    + r"""
local ticket, limit, lease, channel = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local project, weight = ARGV[5], tonumber(ARGV[6])
dispatch(limit, lease, channel)
local kept = redis.call('HGET', reserved, project)
if kept then  -- the slot its project's last request gave back, kept for it
  drop_held(kept)
  hold(ticket, project, now + lease)
  expire_all(lease)
  return 1
end
if redis.call('ZCARD', queue) == 0 and redis.call('ZCARD', held) < limit then
  hold(ticket, project, now + lease)
  expire_all(lease)
  return 1
end
if redis.call('ZCARD', queue) >= tonumber(ARGV[8]) then return -1 end
local mine = redis.call('ZLEXCOUNT', queue, '[' .. project .. '\0', '(' .. project .. '\1')
if mine >= tonumber(ARGV[9]) then return -2 end
local seq = redis.call('HINCRBY', state, 'n', 1)
local member = project .. '\0' .. ARGV[7] .. string.format('%012d', seq) .. '\0' .. ticket
redis.call('ZADD', queue, 0, member)
redis.call('ZADD', deadlines, now + tonumber(ARGV[10]), member)
redis.call('HSET', tickets, ticket, member)
if not redis.call('ZSCORE', active, project) then
  local v = tonumber(redis.call('HGET', state, 'v') or '0')
  redis.call('ZADD', active, v, project)
  redis.call('HSET', weights, project, weight)
end
dispatch(limit, lease, channel)
expire_all(lease)
if redis.call('ZSCORE', held, ticket) then return 1 end
return 0
"""
)

# ARGV: ticket, limit, lease (ms), channel, keep ('1': if the slot was granted, keep it and
# return 1), project, weight, grace (ms). Leaves the queue, or frees the slot: kept for the
# project for the grace (returns 2; fair_queue.py says when), else served to the next.
_LEAVE = (
    _PRELUDE
    + r"""
local ticket, limit, lease, channel = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local project, weight, grace = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
if ARGV[5] == '1' and redis.call('ZSCORE', held, ticket) then return 1 end
local member = redis.call('HGET', tickets, ticket)
if member then
  redis.call('ZREM', queue, member)
  redis.call('ZREM', deadlines, member)
  redis.call('HDEL', tickets, ticket)
end
local was_held = redis.call('ZSCORE', held, ticket)
if was_held then drop_held(ticket) end
if was_held and grace > 0 and redis.call('ZCARD', queue) > 0 and not head_of(project)
    and not redis.call('HGET', reserved, project) then
  local others = 0
  for _, w in ipairs(redis.call('HVALS', weights)) do others = others + tonumber(w) end
  others = others - tonumber(redis.call('HGET', weights, project) or '0')
  local holding = 0
  for _, p in ipairs(redis.call('HVALS', holders)) do
    if p == project then holding = holding + 1 end
  end
  if holding + 1 <= limit * weight / (weight + others) then
    local kept = '~' .. ticket
    hold(kept, project, now + grace)
    redis.call('HSET', reserved, project, kept)
    expire_all(lease)
    return 2
  end
end
dispatch(limit, lease, channel)
return 0
"""
)

# KEYS: held and queue of each endpoint in turn; ARGV: their limits. Returns 1/0 per endpoint.
_HAS_ROOM = r"""
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local out = {}
for i = 1, #ARGV do
  local busy = redis.call('ZCOUNT', KEYS[2 * i - 1], '(' .. now, '+inf')
  local free = busy < tonumber(ARGV[i]) and redis.call('ZCARD', KEYS[2 * i]) == 0
  out[i] = free and 1 or 0
end
return out
"""

# Redis drops a waiter this long after its own wait ends (the live waiter leaves first).
_DEADLINE_MARGIN_MS = 5000


class RedisFairQueue:
    def __init__(
        self,
        calls: RedisScripts,
        *,
        prefix: str,
        lease: float,
        grace: float = 0.0,
    ) -> None:
        self._calls = calls  # shared with the other admission checks; closed by its owner
        self._redis: Any = self._calls.redis
        self._enter = self._calls.register(_ENTER)
        self._leave = self._calls.register(_LEAVE)
        self._has_room = self._calls.register(_HAS_ROOM)
        self.prefix = f"{prefix}fs:"
        self.channel = f"{self.prefix}granted"
        self.lease_ms = int(lease * 1000)
        self.grace_ms = int(grace * 1000)
        self._serving: set[asyncio.Task[None]] = set()
        self._timeout = calls.timeout
        # Tickets of this process's waiters -> the future their grant resolves, their held set.
        self._waiting: dict[str, tuple[asyncio.Future[None], str]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening: asyncio.Event | None = None

    @classmethod
    def from_settings(cls) -> RedisFairQueue:
        from django.conf import settings

        from resource_server_async import runtime

        return cls(
            runtime.current.admission_redis,
            prefix=settings.LIMITS_REDIS_PREFIX,
            lease=settings.LIMITS_SLOT_LEASE_SECONDS,
            grace=settings.FAIR_SHARE_GRACE_SECONDS,
        )

    def keys(self, endpoint: str) -> list[str]:
        base = f"{self.prefix}{endpoint}:"
        names = (
            "held",
            "queue",
            "deadlines",
            "active",
            "weights",
            "state",
            "tickets",
            "holders",
            "reserved",
        )
        return [base + name for name in names]

    async def enter(self, place: Place, timeout: float) -> bool:
        await self._listen()
        keys = self.keys(place.endpoint)
        granted = asyncio.get_running_loop().create_future()
        self._waiting[place.ticket] = (granted, keys[0])
        try:
            args = [
                place.ticket,
                place.limit,
                self.lease_ms,
                self.channel,
                place.project,
                repr(place.weight),
                place.priority,
                place.max_queued,
                place.max_queued_project,
                int(timeout * 1000) + _DEADLINE_MARGIN_MS,
            ]
            status = int(await self._calls.run(self._enter, keys, args))
            if status < 0:
                raise QueueFull(project_full=status == -2)
            if status == 0:
                async with asyncio.timeout(timeout):
                    await granted
            return True
        except TimeoutError:
            # Granted in the last moment (the message still on its way)? Then keep the slot.
            return bool(await self._release(place, keep=True))
        except asyncio.CancelledError:
            # The client left: out of the queue (or the slot just granted back) before going.
            with contextlib.suppress(LimiterUnavailable):
                await asyncio.shield(self._release(place, keep=False))
            raise
        finally:
            self._waiting.pop(place.ticket, None)

    async def leave(self, place: Place) -> None:
        if await self._release(place, keep=False) == 2:  # kept for the project a moment
            loop = asyncio.get_running_loop()
            # A moment past the grace: Redis ends it by its own clock, in whole milliseconds.
            loop.call_later(self.grace_ms / 1000 + 0.002, self._serve_later, place)

    def _serve_later(self, place: Place) -> None:
        """The grace of a kept slot is over: serve the queue (if the project did not take it;
        another process's step would, too, as soon as anything happens on the endpoint)."""
        task = asyncio.get_running_loop().create_task(self._serve(place))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, place: Place) -> None:
        args = ["", place.limit, self.lease_ms, self.channel, 0, place.project, 1, 0]
        with contextlib.suppress(LimiterUnavailable):
            await self._calls.run(self._leave, self.keys(place.endpoint), args)

    async def _release(self, place: Place, *, keep: bool) -> int:
        args = [
            place.ticket,
            place.limit,
            self.lease_ms,
            self.channel,
            int(keep),
            place.project,
            repr(place.weight),
            self.grace_ms,
        ]
        return int(await self._calls.run(self._leave, self.keys(place.endpoint), args))

    async def has_room(self, endpoints: Sequence[tuple[str, int]]) -> list[bool]:
        keys: list[str] = []
        for slug, _ in endpoints:
            held, queue, *_ = self.keys(slug)
            keys += (held, queue)
        out = await self._calls.run(self._has_room, keys, [limit for _, limit in endpoints])
        return [bool(int(free)) for free in out]

    async def queued(self, endpoint: str) -> int:
        try:
            return int(await self._redis.zcard(self.keys(endpoint)[1]))
        except Exception as exc:
            raise LimiterUnavailable(str(exc) or type(exc).__name__) from exc

    async def _listen(self) -> None:
        """Start this process's grant listener once; return when it is subscribed (a grant
        published before would be missed, and a waiter has not queued yet)."""
        if self._listener is None or self._listener.done():
            self._listening = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self._receive_grants())
        assert self._listening is not None
        if not self._listening.is_set():
            try:
                async with asyncio.timeout(self._timeout * 2):
                    await self._listening.wait()
            except TimeoutError as exc:
                raise LimiterUnavailable("no pub/sub subscription") from exc

    async def _receive_grants(self) -> None:
        assert self._listening is not None
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        self._listening.set()
                        await self._recheck()
                    elif message["type"] == "message":
                        waiter = self._waiting.get(message["data"].decode())
                        if waiter is not None and not waiter[0].done():
                            waiter[0].set_result(None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._listening.clear()
                warn_rarely(f"fair share: the grant listener lost Redis ({exc}); reconnecting")
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(PAUSE_AFTER_FAILURE)  # before reconnecting to a failed Redis

    async def _recheck(self) -> None:
        """After (re)subscribing: wake the waiters granted while no one listened."""
        for ticket, (granted, held) in list(self._waiting.items()):
            if not granted.done() and await self._redis.zscore(held, ticket) is not None:
                granted.set_result(None)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        # The connection is the runtime's (shared with limits and allocations): it closes it.
