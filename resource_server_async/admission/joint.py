"""Limits and allocations decided in one Redis script, when both apply and both are on Redis.

Separately, a request that meets both costs two script calls, two replies and two futures; and
when one refuses, the other has charged already and gives it back at the request's end. The
joint script runs the limiter's ACQUIRE, then, only if the limits pass, the ledger's CHARGE; if
an allocation refuses, it gives the limits back in the same step (the limiter's SETTLE, with
each bucket's cost as its refund, the ticket's slots freed). All or nothing, one round trip.
The scripts are the limiter's and the ledger's own, as functions of their own KEYS and ARGV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from resource_server_async import runtime
from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.admission.allocation_ledger import (
    CHARGE,
    CHARGE_NOW,
    CHARGE_TOKENS,
    Account,
    RedisLedger,
    charged,
)
from resource_server_async.admission.allocation_ledger import SETTLE as SPEND
from resource_server_async.admission.allocations import (
    AllocationPlan,
    AllocationRefusal,
    AllocationRequest,
    correction,
)
from resource_server_async.admission.limiter import Bucket, LimiterUnavailable, Slot
from resource_server_async.admission.limits import Plan, accept_limits
from resource_server_async.admission.redis_limiter import (
    ACQUIRE,
    ACQUIRE_TICKET,
    SETTLE,
    RedisLimiter,
    acquire_cost,
    decided,
)
from resource_server_async.admission.redis_pipe import RedisUnavailable
from resource_server_async.admission.ticket import redis_failed, token_refunds
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.unique_ids import new_id

# ARGV[1], ARGV[2]: the limiter call's key and argument counts, then its arguments, then the
# ledger call's; KEYS: the limiter call's, then the ledger call's. Returns {limits} when the
# limits refused (nothing charged), else {limits, allocations}.
JOINT = f"""
local acquire = function(KEYS, ARGV)
{ACQUIRE}
end
local charge = function(KEYS, ARGV)
{CHARGE}
end
local settle = function(KEYS, ARGV)
{SETTLE}
end
local nk, na = tonumber(ARGV[1]), tonumber(ARGV[2])
local lk, la, ck, ca = {{}}, {{}}, {{}}, {{}}
for i = 1, #KEYS do
  if i <= nk then lk[i] = KEYS[i] else ck[i - nk] = KEYS[i] end
end
for i = 3, #ARGV do
  if i <= 2 + na then la[i - 2] = ARGV[i] else ca[i - 2 - na] = ARGV[i] end
end
local limits = acquire(lk, la)
if limits[1] ~= 0 then return {{limits}} end
local spent = charge(ck, ca)
if spent[1] ~= 0 then
  local undo = {{la[1], la[2], la[3]}}
  for i = 1, tonumber(la[1]) do
    undo[#undo + 1] = la[3 + 2 * i]
    undo[#undo + 1] = la[4 + 2 * i]
  end
  settle(lk, undo)
end
return {{limits, spent}}
"""


# The release of both, one call in the outbox's bundle (redis_outbox.py) instead of two: the
# same layout (ARGV[1], ARGV[2]: the limiter call's key and argument counts; then SETTLE's
# arguments, then the ledger's SETTLE's), each part skipped when it has no keys.
JOINT_RELEASE = f"""
local settle = function(KEYS, ARGV)
{SETTLE}
end
local spend = function(KEYS, ARGV)
{SPEND}
end
local nk, na = tonumber(ARGV[1]), tonumber(ARGV[2])
local lk, la, ck, ca = {{}}, {{}}, {{}}, {{}}
for i = 1, #KEYS do
  if i <= nk then lk[i] = KEYS[i] else ck[i - nk] = KEYS[i] end
end
for i = 3, #ARGV do
  if i <= 2 + na then la[i - 2] = ARGV[i] else ca[i - 2 - na] = ARGV[i] end
end
if nk > 0 then settle(lk, la) end
if #ck > 0 then spend(ck, ca) end
return 0
"""


# Prepared calls kept (one per principal, endpoint and period in use); a full table starts
# afresh.
PREPARED_CALLS = 10_000


@dataclass(slots=True)
class _Prepared:
    """The joint call of one limit plan and one set of accounts: its KEYS and ARGV once, and
    the places in ARGV of what each request changes (its ticket, costs, tokens and clock)."""

    shape: object  # the limits' cached plan (limits.Plan): held, so its id stays its own
    accounts: tuple[Account, ...]
    keys: list[Any]
    args: list[Any]
    ticket: int
    costs: list[int]
    tokens: int
    now: int


class JointAdmission:
    """The joint script of one limiter and one ledger sharing one Redis connection."""

    def __init__(self, limiter: RedisLimiter, ledger: RedisLedger) -> None:
        self.limiter = limiter
        self.ledger = ledger
        self._calls = limiter.calls
        self._script = self._calls.register(JOINT)
        self._release = self._calls.register_release(JOINT_RELEASE)
        self._prepared: dict[int, _Prepared] = {}

    def start(self, planned: Plan, allocation: AllocationPlan, ticket_id: str) -> Any:
        buckets, _, shape = planned
        prepared = self._prepared.get(id(shape))
        # Accounts compare by identity first: the books return the same ones all period.
        if (
            prepared is None
            or prepared.shape is not shape
            or prepared.accounts != allocation.accounts
        ):
            prepared = self._prepare(planned, allocation)
        args = prepared.args.copy()
        args[prepared.ticket] = ticket_id
        for at, bucket in zip(prepared.costs, buckets, strict=True):
            args[at] = bucket.cost
        args[prepared.tokens] = allocation.tokens
        args[prepared.now] = int(allocation.now * 1000)
        return self._calls.start(self._script, prepared.keys, args)

    def _prepare(self, planned: Plan, allocation: AllocationPlan) -> _Prepared:
        buckets, slots, shape = planned
        limit_keys, limit_args = self.limiter.acquire_call(buckets, slots, "")
        charge_keys, charge_args = self.ledger.charge_call(allocation.accounts, 0, 0.0)
        charge = 2 + len(limit_args)  # ARGV: the two counts, the limits' arguments, the ledger's
        prepared = _Prepared(
            shape,
            allocation.accounts,
            limit_keys + charge_keys,
            [len(limit_keys), len(limit_args), *limit_args, *charge_args],
            2 + ACQUIRE_TICKET,
            [2 + acquire_cost(index) for index in range(len(buckets))],
            charge + CHARGE_TOKENS,
            charge + CHARGE_NOW,
        )
        if len(self._prepared) >= PREPARED_CALLS:
            self._prepared.clear()
        self._prepared[id(shape)] = prepared
        return prepared

    def failed(self, exc: RedisUnavailable) -> LimiterUnavailable:
        return self._calls.failed(exc)

    def release(
        self,
        refunds: list[tuple[Bucket, int]],
        slots: tuple[Slot, ...],
        ticket_id: str,
        accounts: tuple[Account, ...],
        tokens: int,
        gpu_seconds: float,
    ) -> None:
        """Post both releases as one (a part with nothing to do is left out)."""
        limit_keys: list[Any] = []
        limit_args: list[Any] = []
        if refunds or slots:
            limit_keys, limit_args = self.limiter.settle_call(refunds, slots, ticket_id)
        charge_keys: list[Any] = []
        charge_args: list[Any] = []
        if tokens or gpu_seconds:
            charge_keys, charge_args = self.ledger.settle_call(accounts, tokens, gpu_seconds)
        self._calls.send(
            self._release,
            limit_keys + charge_keys,
            [len(limit_keys), len(limit_args), *limit_args, *charge_args],
        )


@dataclass(slots=True)
class JointTicket:
    """What one joint admission charged, limits and allocations: released once, at the end of
    the request, as the limits' Ticket and the AllocationTicket would be, in one call."""

    joint: JointAdmission
    id: str
    buckets: tuple[Bucket, ...]
    slots: tuple[Slot, ...]
    accounts: tuple[Account, ...]
    reserved: int
    outcome: RequestOutcome | None

    def release(self, used_tokens: int | None) -> None:
        refunds = token_refunds(self.buckets, used_tokens)
        tokens, gpu = correction(self.reserved, self.outcome, used_tokens)
        if refunds or self.slots or tokens or gpu:
            self.joint.release(refunds, self.slots, self.id, self.accounts, tokens, gpu)


_joint: JointAdmission | None = None  # of the runtime's limiter and ledger (tests make many)


def joint_admission(limiter: Any, ledger: Any) -> JointAdmission | None:
    """The joint script for this limiter and ledger (None: not both on one Redis connection)."""
    global _joint
    joint = _joint
    if joint is not None and joint.limiter is limiter and joint.ledger is ledger:
        return joint
    if not isinstance(limiter, RedisLimiter) or not isinstance(ledger, RedisLedger):
        return None
    if limiter.calls is not ledger.calls:
        return None
    _joint = JointAdmission(limiter, ledger)
    return _joint


def send_jointly(joint: JointAdmission, planned: Plan, allocation: AllocationPlan) -> Any:
    """Send the joint call: (ticket id, the reply's future), or None when Redis failed a moment
    ago and admission fails open. The caller awaits the future itself, then `decide_jointly`
    (one coroutine less in the chain that each reply resumes)."""
    ticket_id = new_id()
    try:
        return ticket_id, joint.start(planned, allocation, ticket_id)
    except LimiterUnavailable as exc:
        redis_failed(exc, "limits_unavailable", "limits and allocations")
        return None


def joint_failed(joint: JointAdmission, exc: RedisUnavailable) -> None:
    """Redis did not answer the joint call: 503, or admitted without limits (fail open)."""
    redis_failed(joint.failed(exc), "limits_unavailable", "limits and allocations")


def decide_jointly(
    request: AllocationRequest,
    endpoint: BaseEndpoint,
    joint: JointAdmission,
    planned: Plan,
    allocation: AllocationPlan,
    ticket_id: str,
    out: list[Any],
) -> None:
    """The joint script's reply: the tickets kept, or the first refusal's 429."""
    buckets, slots, _ = planned
    limits = out[0]
    if len(out) == 1:  # the limits refused: accept_limits raises their 429
        accept_limits(request, endpoint, joint.limiter, ticket_id, buckets, slots, decided(limits))
        return
    spent = out[1]
    if spent[1] == 1:  # a new account: rebuild it from the records soon
        runtime.current.allocations.wake()
    state = request.admission
    if spent[0] != 0:
        # The script gave the limits back: no ticket to release, only the headers to send.
        if state is not None:
            state.record(buckets, decided(limits))
        raise AllocationRefusal(allocation.applying[charged(spent).refused_by], allocation.now)
    if state is not None:
        state.buckets, state.decision = buckets, decided(limits)
        state.tickets.append(
            JointTicket(
                joint,
                ticket_id,
                buckets,
                slots,
                allocation.accounts,
                allocation.tokens,
                request.outcome,
            )
        )
