"""The limiter shared by every worker process and gateway host: one Lua script per decision.

The script reads every bucket and slot set the request needs, and charges them only if all
pass, in one atomic step on the Redis server (no check-then-act between workers). Time is
Redis's own clock (TIME), so hosts whose clocks differ still agree. Keys expire when a bucket
would be full again or a slot set's last lease ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

from resource_server_async.admission.limiter import Bucket, Decision, Slot
from resource_server_async.admission.redis_pipe import RedisUnavailable
from resource_server_async.admission.redis_scripts import RedisScripts

# KEYS: the buckets, then the slot sets. ARGV: #buckets, window (ms), ticket, lease (ms), then
# capacity and cost per bucket, then the limit per slot set (ACQUIRE_TICKET, acquire_cost: the
# places of what changes from request to request). Returns: the refusing limit's
# 1-based index (0: admitted), the wait (ms), then remaining and reset (ms) per bucket.
ACQUIRE = """
local nb = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local lease = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local levels, refused, wait = {}, 0, 0
for i = 1, nb do
  local cap, cost = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = cap
  if state[1] then
    level = math.min(cap, tonumber(state[1]) + (now - tonumber(state[2])) * cap / window)
  end
  levels[i] = level
  if level < cost then
    wait = math.max(wait, (cost - level) * window / cap)
    if refused == 0 then refused = i end
  end
end
local base = 4 + 2 * nb
for j = 1, #KEYS - nb do
  local key = KEYS[nb + j]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[base + j]) then
    wait = math.max(wait, 1000)  -- SLOT_RETRY_SECONDS: when a request ends is unknown
    if refused == 0 then refused = nb + j end
  end
end
if refused == 0 then
  for i = 1, nb do
    local cap = tonumber(ARGV[3 + 2 * i])
    levels[i] = levels[i] - tonumber(ARGV[4 + 2 * i])
    redis.call('HSET', KEYS[i], 'l', levels[i], 't', now)
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - levels[i]) * window / cap) + 1000)
  end
  for j = 1, #KEYS - nb do
    redis.call('ZADD', KEYS[nb + j], now + lease, ARGV[3])
    redis.call('PEXPIRE', KEYS[nb + j], lease)
  end
end
local out = {refused, math.ceil(wait)}
for i = 1, nb do
  local cap = tonumber(ARGV[3 + 2 * i])
  out[#out + 1] = math.floor(levels[i])
  out[#out + 1] = math.ceil((cap - levels[i]) * window / cap)
end
return out
"""

# KEYS: the buckets, then the slot sets. ARGV: #buckets, window (ms), ticket, then capacity
# and refund per bucket (SETTLE_TICKET, settle_refund: their places). A missing bucket is
# full: a refund to it is nothing, a charge starts a debt.
SETTLE = """
local nb = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for i = 1, nb do
  local cap, refund = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  local state = redis.call('HMGET', KEYS[i], 'l', 't')
  local level = nil
  if state[1] then
    level = math.min(cap, tonumber(state[1]) + (now - tonumber(state[2])) * cap / window) + refund
  elseif refund < 0 then
    level = cap + refund
  end
  if level ~= nil then
    if level >= cap then
      redis.call('DEL', KEYS[i])
    else
      redis.call('HSET', KEYS[i], 'l', level, 't', now)
      redis.call('PEXPIRE', KEYS[i], math.ceil((cap - level) * window / cap) + 1000)
    end
  end
end
for j = nb + 1, #KEYS do
  redis.call('ZREM', KEYS[j], ARGV[3])
end
return 0
"""


ACQUIRE_TICKET = 2


def acquire_cost(index: int) -> int:
    """The place of bucket `index`'s cost in ACQUIRE's ARGV (0-based)."""
    return 5 + 2 * index


SETTLE_TICKET = 2


def settle_refund(index: int) -> int:
    """The place of bucket `index`'s refund in SETTLE's ARGV (0-based)."""
    return 4 + 2 * index


def decided(out: list[Any]) -> Decision:
    """ACQUIRE's reply as a Decision (hiredis gives Lua's numbers as ints already; the levels
    are read from the reply itself)."""
    return Decision(out[0] - 1, out[1] / 1000, out, 2)


class RedisLimiter:
    def __init__(self, calls: RedisScripts, *, window: float, lease: float) -> None:
        self.window_ms = int(window * 1000)
        self.lease_ms = int(lease * 1000)
        self.calls = calls  # shared with the other admission checks; closed by its owner
        self._calls = calls
        self._acquire = self._calls.register(ACQUIRE)
        self._settle = self._calls.register_release(SETTLE)

    @classmethod
    def from_settings(cls) -> RedisLimiter:
        from django.conf import settings

        from resource_server_async import runtime

        return cls(
            runtime.current.admission_redis,
            window=settings.LIMITS_WINDOW_SECONDS,
            lease=settings.LIMITS_SLOT_LEASE_SECONDS,
        )

    # acquire and settle send their call when called (not when awaited): calls made before
    # awaiting any (admission's limits and allocations, a request's releases) share one write.

    def acquire(
        self, buckets: Sequence[Bucket], slots: Sequence[Slot], ticket: str
    ) -> Awaitable[Decision]:
        keys, args = self.acquire_call(buckets, slots, ticket)
        return self._decision(self._calls.start(self._acquire, keys, args))

    def acquire_call(
        self, buckets: Sequence[Bucket], slots: Sequence[Slot], ticket: str
    ) -> tuple[list[Any], list[Any]]:
        """The KEYS and ARGV of ACQUIRE (also run inside the joint admission script)."""
        args: list[Any] = [len(buckets), self.window_ms, ticket, self.lease_ms]
        for bucket in buckets:
            args += (bucket.capacity, bucket.cost)
        args += [slot.limit for slot in slots]
        return [b.key for b in buckets] + [s.key for s in slots], args

    async def _decision(self, sent: Any) -> Decision:
        try:
            out = await sent
        except RedisUnavailable as exc:
            raise self._calls.failed(exc) from exc
        return decided(out)

    def settle(
        self, refunds: Sequence[tuple[Bucket, int]], slots: Sequence[Slot], ticket: str
    ) -> None:
        keys, args = self.settle_call(refunds, slots, ticket)
        self._calls.send(self._settle, keys, args)

    def settle_call(
        self, refunds: Sequence[tuple[Bucket, int]], slots: Sequence[Slot], ticket: str
    ) -> tuple[list[Any], list[Any]]:
        """The KEYS and ARGV of SETTLE (also run inside the joint release script)."""
        # Loops, not comprehensions: each of those is a function call of its own (Python 3.11),
        # and this runs at the end of every request with limits.
        args: list[Any] = [len(refunds), self.window_ms, ticket]
        keys: list[Any] = []
        for bucket, refund in refunds:
            keys.append(bucket.key)
            args += (bucket.capacity, refund)
        for slot in slots:
            keys.append(slot.key)
        return keys, args

    async def close(self) -> None:
        """Nothing of its own to close: the connection is the runtime's."""
