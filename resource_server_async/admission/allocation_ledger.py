"""What each allocation spent in its current period: in Redis (shared by every worker and
host, one script per decision) or in this process.

An account is one allocation in one period: tokens (`t`, reservations of requests in flight
included) and GPU-seconds (`g`). A request passes while every account it charges has something
left; it is charged its token reservation at once and corrected at its end. A new account (a
new period, or a Redis that lost its data) starts at zero and is marked unbuilt (`b` = 0, with
its creation time `c`): the reconciler (allocation_reconcile.py) adds the records from before
`c`, and every reconcile lifts the counts to at least what the records show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

from resource_server_async.admission.limiter import LimiterUnavailable
from resource_server_async.admission.redis_pipe import RedisUnavailable
from resource_server_async.admission.redis_scripts import RedisScripts


@dataclass(frozen=True, slots=True)
class Account:
    """One allocation's budget in one period, as a request charges it."""

    key: str
    tokens: int | None  # the budget, None: no token budget
    gpu_seconds: int | None
    expires_at: float  # epoch seconds: the period's end, plus a margin


@dataclass(slots=True)  # made per request: not frozen (limiter.py says why)
class Spent:
    tokens: int
    gpu_seconds: float
    built: bool = True  # False: records from before `created` are not counted yet
    created: float = 0.0


class Charge:
    """A ledger's decision. What each account had spent is read from Redis's reply only when
    asked for (admission needs only the decision)."""

    __slots__ = ("_reply", "_spent", "fresh", "refused_by")

    def __init__(
        self,
        refused_by: int,
        fresh: bool,
        spent: tuple[Spent, ...] | None = None,
        reply: list[Any] | None = None,
    ) -> None:
        self.refused_by = refused_by  # index of the first spent account, -1: admitted (and charged)
        self.fresh = fresh  # an account was new: the reconciler should rebuild it soon
        self._spent = spent
        self._reply = reply  # CHARGE's reply, when `spent` is not given

    @property
    def admitted(self) -> bool:
        return self.refused_by < 0

    @property
    def spent(self) -> tuple[Spent, ...]:
        """Per account, what it had spent before this request's charge."""
        if self._spent is None:
            out = self._reply or []
            self._spent = tuple(
                Spent(int(out[i]), float(out[i + 1]), bool(int(out[i + 2])), int(out[i + 3]) / 1000)
                for i in range(2, len(out), 4)
            )
        return self._spent


def exhausted(account: Account, spent: Spent) -> bool:
    return (account.tokens is not None and spent.tokens >= account.tokens) or (
        account.gpu_seconds is not None and spent.gpu_seconds >= account.gpu_seconds
    )


class Ledger(Protocol):
    # Plain functions returning an awaitable: the Redis ledger sends its call when called
    # (see Limiter), so that admission's limits and allocations share one write.
    def charge(self, accounts: Sequence[Account], tokens: int, now: float) -> Awaitable[Charge]:
        """If no account is spent, charge `tokens` to every one, atomically."""
        ...

    def settle(
        self, accounts: Sequence[Account], tokens: int, gpu_seconds: float
    ) -> Awaitable[None] | None:
        """Add `tokens` (negative: give back) and `gpu_seconds` to the accounts that exist
        (None: sent, with no reply to wait for)."""
        ...

    async def read(self, keys: Sequence[str]) -> list[Spent | None]: ...

    async def reconcile(
        self, account: Account, seen: Spent | None, before: Spent, whole: Spent, now: float
    ) -> None:
        """Rebuild from the records: if the account is still the unbuilt one `seen`, add the
        records from before its creation (`before`); then lift it to at least `whole`, the
        records of the whole period. A missing account is created from `whole`."""
        ...

    async def close(self) -> None: ...


class MemoryLedger:
    """Accounts in this process: `[tokens, gpu, built, created, expires_at]` by key. No await
    inside a decision, so each is atomic on the event loop. Accounts are as many as the
    allocations (operators make them) per live period; ended periods are dropped."""

    def __init__(self) -> None:
        self._accounts: dict[str, list[Any]] = {}

    def _drop_ended(self, now: float) -> None:
        for key in [k for k, a in self._accounts.items() if a[4] <= now]:
            del self._accounts[key]

    @staticmethod
    def _spent(state: list[Any] | None) -> Spent:
        if state is None:
            return Spent(0, 0.0, False, 0.0)
        return Spent(state[0], state[1], state[2], state[3])

    async def charge(self, accounts: Sequence[Account], tokens: int, now: float) -> Charge:
        states = [self._accounts.get(a.key) for a in accounts]
        spent = tuple(self._spent(s) for s in states)
        fresh = any(s is None for s in states)
        for index, (account, amount) in enumerate(zip(accounts, spent, strict=True)):
            if exhausted(account, amount):
                return Charge(index, fresh, spent)
        if fresh:
            self._drop_ended(now)
        for account, state in zip(accounts, states, strict=True):
            if state is None:
                state = self._accounts[account.key] = [0, 0.0, False, now, account.expires_at]
            state[0] += tokens
        return Charge(-1, fresh, spent)

    async def settle(self, accounts: Sequence[Account], tokens: int, gpu_seconds: float) -> None:
        for account in accounts:
            state = self._accounts.get(account.key)
            if state is not None:
                state[0] += tokens
                state[1] += gpu_seconds

    async def read(self, keys: Sequence[str]) -> list[Spent | None]:
        return [None if k not in self._accounts else self._spent(self._accounts[k]) for k in keys]

    async def reconcile(
        self, account: Account, seen: Spent | None, before: Spent, whole: Spent, now: float
    ) -> None:
        state = self._accounts.get(account.key)
        if state is None:
            self._accounts[account.key] = [
                whole.tokens,
                whole.gpu_seconds,
                True,
                now,
                account.expires_at,
            ]
            return
        if seen is not None and not seen.built and not state[2] and state[3] == seen.created:
            state[0] += before.tokens
            state[1] += before.gpu_seconds
            state[2] = True
        state[0] = max(state[0], whole.tokens)
        state[1] = max(state[1], whole.gpu_seconds)

    async def close(self) -> None:
        self._accounts.clear()


# KEYS: the accounts. ARGV: tokens to charge, now (ms) (CHARGE_TOKENS, CHARGE_NOW: what changes
# from request to request), then per account its token budget,
# GPU-seconds budget (-1: none) and expiry (epoch s). Returns the refusing account's 1-based
# index (0: charged), whether one was new, then per account tokens, GPU-seconds (as a string:
# Lua numbers become integers on the way out), built and created.
CHARGE = """
local cost = tonumber(ARGV[1])
local out = {0, 0}
for i = 1, #KEYS do
  local s = redis.call('HMGET', KEYS[i], 't', 'g', 'b', 'c')
  if not s[1] then out[2] = 1 end
  local t, g = tonumber(s[1] or '0'), tonumber(s[2] or '0')
  local tb, gb = tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  if out[1] == 0 and ((tb >= 0 and t >= tb) or (gb >= 0 and g >= gb)) then out[1] = i end
  out[#out + 1] = t
  out[#out + 1] = tostring(g)
  out[#out + 1] = tonumber(s[3] or '0')
  out[#out + 1] = tonumber(s[4] or '0')
end
if out[1] == 0 then
  for i = 1, #KEYS do
    if redis.call('HSETNX', KEYS[i], 'c', ARGV[2]) == 1 then
      redis.call('HSET', KEYS[i], 'b', 0, 'g', 0)
    end
    redis.call('HINCRBY', KEYS[i], 't', cost)
    redis.call('EXPIREAT', KEYS[i], ARGV[3 * i + 2])
  end
end
return out
"""

# KEYS: the accounts. ARGV: tokens (may be negative), GPU-seconds (SETTLE_TOKENS, SETTLE_GPU).
# Missing accounts (lost, or of an ended period) are left alone: the records count this request
# when they are rebuilt.
SETTLE = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if tonumber(ARGV[1]) ~= 0 then redis.call('HINCRBY', KEYS[i], 't', ARGV[1]) end
    if tonumber(ARGV[2]) ~= 0 then redis.call('HINCRBYFLOAT', KEYS[i], 'g', ARGV[2]) end
  end
end
return 0
"""

# KEYS: one account. ARGV: seen created (ms, -1: none), before tokens, before GPU, whole
# tokens, whole GPU, now (ms), expiry (epoch s).
_RECONCILE = """
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 't', ARGV[4], 'g', ARGV[5], 'b', 1, 'c', ARGV[6])
  redis.call('EXPIREAT', key, ARGV[7])
  return 1
end
local s = redis.call('HMGET', key, 'b', 'c')
if s[1] == '0' and s[2] == ARGV[1] then
  redis.call('HINCRBY', key, 't', ARGV[2])
  redis.call('HINCRBYFLOAT', key, 'g', ARGV[3])
  redis.call('HSET', key, 'b', 1)
end
local now = redis.call('HMGET', key, 't', 'g')
if tonumber(now[1]) < tonumber(ARGV[4]) then redis.call('HSET', key, 't', ARGV[4]) end
if tonumber(now[2]) < tonumber(ARGV[5]) then redis.call('HSET', key, 'g', ARGV[5]) end
return 0
"""


CHARGE_TOKENS, CHARGE_NOW = 0, 1
SETTLE_TOKENS, SETTLE_GPU = 0, 1


def charged(out: list[Any]) -> Charge:
    """CHARGE's reply as a Charge (hiredis gives Lua's numbers as ints)."""
    return Charge(out[0] - 1, out[1] == 1, reply=out)


class RedisLedger:
    def __init__(self, calls: RedisScripts) -> None:
        self.calls = calls  # shared with the other admission checks; closed by its owner
        self._calls = calls
        self._charge = self._calls.register(CHARGE)
        self._settle = self._calls.register_release(SETTLE)
        self._reconcile = self._calls.register(_RECONCILE)

    def charge(self, accounts: Sequence[Account], tokens: int, now: float) -> Awaitable[Charge]:
        keys, args = self.charge_call(accounts, tokens, now)
        return self._charged(self._calls.start(self._charge, keys, args))

    @staticmethod
    def charge_call(
        accounts: Sequence[Account], tokens: int, now: float
    ) -> tuple[list[Any], list[Any]]:
        """The KEYS and ARGV of CHARGE (also run inside the joint admission script)."""
        args: list[Any] = [tokens, int(now * 1000)]
        for a in accounts:
            args += (_budget(a.tokens), _budget(a.gpu_seconds), int(a.expires_at))
        return [a.key for a in accounts], args

    async def _charged(self, sent: Any) -> Charge:
        try:
            out = await sent
        except RedisUnavailable as exc:
            raise self._calls.failed(exc) from exc
        return charged(out)

    def settle(self, accounts: Sequence[Account], tokens: int, gpu_seconds: float) -> None:
        keys, args = self.settle_call(accounts, tokens, gpu_seconds)
        self._calls.send(self._settle, keys, args)

    @staticmethod
    def settle_call(
        accounts: Sequence[Account], tokens: int, gpu_seconds: float
    ) -> tuple[list[Any], list[Any]]:
        """The KEYS and ARGV of SETTLE (also run inside the joint release script)."""
        return [*map(_key, accounts)], [tokens, repr(float(gpu_seconds))]

    async def read(self, keys: Sequence[str]) -> list[Spent | None]:
        try:
            async with self._calls.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hmget(key, "t", "g", "b", "c")
                rows = await asyncio.wait_for(pipe.execute(), self._calls.timeout * 2)
        except Exception as exc:
            raise LimiterUnavailable(str(exc) or type(exc).__name__) from exc
        return [
            None
            if row[0] is None
            else Spent(int(row[0]), float(row[1] or 0), row[2] != b"0", int(row[3] or 0) / 1000)
            for row in rows
        ]

    async def reconcile(
        self, account: Account, seen: Spent | None, before: Spent, whole: Spent, now: float
    ) -> None:
        created = -1 if seen is None or seen.built else round(seen.created * 1000)
        args: list[Any] = [
            created,
            before.tokens,
            repr(before.gpu_seconds),
            whole.tokens,
            repr(whole.gpu_seconds),
            int(now * 1000),
            int(account.expires_at),
        ]
        await self._calls.run(self._reconcile, [account.key], args)

    async def close(self) -> None:
        """Nothing of its own to close: the connection is its owner's."""


_key = attrgetter("key")  # in C: a comprehension is a function call of its own (Python 3.11)


def _budget(value: int | None) -> int:
    return -1 if value is None else value


def build_ledger() -> Ledger:
    """Redis with REDIS_URL (shared by every worker and host), else in-process."""
    from django.conf import settings

    if settings.REDIS_URL:
        from resource_server_async import runtime

        return RedisLedger(runtime.current.admission_redis)
    return MemoryLedger()
