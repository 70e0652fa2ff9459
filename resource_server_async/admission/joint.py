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
    SETTLE_GPU,
    SETTLE_TOKENS,
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
    SETTLE_TICKET,
    RedisLimiter,
    acquire_cost,
    decided,
    settle_refund,
)
from resource_server_async.admission.redis_pipe import RedisUnavailable
from resource_server_async.admission.resp import Packed, bulk, packed_value
from resource_server_async.admission.ticket import redis_failed, token_refunds
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.unique_ids import new_id

# ARGV[1], ARGV[2]: the limiter call's key and argument counts, then its arguments, then the
# ledger call's; KEYS: the limiter call's, then the ledger call's. _SPLIT parts them: lk, la
# (the limiter's KEYS and ARGV), ck, ca (the ledger's).
_SPLIT = """local nk, na = tonumber(ARGV[1]), tonumber(ARGV[2])
local lk, la, ck, ca = {}, {}, {}, {}
for i = 1, #KEYS do
  if i <= nk then lk[i] = KEYS[i] else ck[i - nk] = KEYS[i] end
end
for i = 3, #ARGV do
  if i <= 2 + na then la[i - 2] = ARGV[i] else ca[i - 2 - na] = ARGV[i] end
end"""

# Returns {limits} when the limits refused (nothing charged), else {limits, allocations}.
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
{_SPLIT}
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
{_SPLIT}
if nk > 0 then settle(lk, la) end
if #ck > 0 then spend(ck, ca) end
return 0
"""


# Prepared calls kept (one per principal, endpoint and period in use); a full table starts
# afresh.
PREPARED_CALLS = 10_000


@dataclass(slots=True)
class _Prepared:
    """The joint call of one limit plan and one set of accounts, packed once (resp.py): its key
    count, keys and arguments as parts, None at the places of what each request changes (its
    ticket, costs, tokens and clock), and those places."""

    shape: object  # the limits' cached plan (limits.Plan): held, so its id stays its own
    accounts: tuple[Account, ...]
    count: int  # items packed: the key count, the keys, the arguments
    parts: list[bytes | None]
    ticket: int
    costs: list[int]
    tokens: int
    now: int
    token_buckets: int  # how many of the plan's buckets count tokens
    release: _PreparedRelease | None = None  # made at the first release that needs it all


@dataclass(slots=True)
class _PreparedRelease:
    """The joint release of a prepared call that gives back to every token bucket, frees the
    slots and corrects the accounts (a request that used other than it reserved: the usual
    end), packed once: its keys, and its arguments as parts with None where each changes."""

    key_count: int
    keys: bytes
    arg_count: int
    parts: list[bytes | None]
    ticket: int
    refunds: list[int]
    tokens: int
    gpu: int


class JointAdmission:
    """The joint script of one limiter and one ledger sharing one Redis connection."""

    def __init__(self, limiter: RedisLimiter, ledger: RedisLedger) -> None:
        self.limiter = limiter
        self.ledger = ledger
        self._calls = limiter.calls
        self._script = self._calls.register(JOINT)
        self._release = self._calls.register_release(JOINT_RELEASE)
        self._prepared: dict[int, _Prepared] = {}

    def start(
        self, planned: Plan, allocation: AllocationPlan, ticket: bytes
    ) -> tuple[_Prepared, Any]:
        """Send the call (`ticket`: the ticket id, packed): the prepared call it was made of,
        and the reply's future."""
        buckets, _, shape = planned
        prepared = self._prepared.get(id(shape))
        # Accounts compare by identity first: the books return the same ones all period.
        if (
            prepared is None
            or prepared.shape is not shape
            or prepared.accounts != allocation.accounts
        ):
            prepared = self._prepare(planned, allocation)
        parts = prepared.parts.copy()  # its None places filled below
        parts[prepared.ticket] = ticket
        for at, bucket in zip(prepared.costs, buckets, strict=True):
            parts[at] = packed_value(bucket.cost)
        parts[prepared.tokens] = packed_value(allocation.tokens)
        parts[prepared.now] = bulk(int(allocation.now * 1000))
        data = b"".join(parts)  # type: ignore[arg-type]
        return prepared, self._calls.start(self._script, [], Packed(prepared.count, data))

    def _prepare(self, planned: Plan, allocation: AllocationPlan) -> _Prepared:
        buckets, slots, shape = planned
        limit_keys, limit_args = self.limiter.acquire_call(buckets, slots, "")
        charge_keys, charge_args = self.ledger.charge_call(allocation.accounts, 0, 0.0)
        keys = limit_keys + charge_keys
        # ARGV: the two counts, the limits' arguments, then the ledger's.
        args = [len(limit_keys), len(limit_args), *limit_args, *charge_args]
        charge = 2 + len(limit_args)
        first = 1 + len(keys)  # the place of ARGV[1] among the items packed
        ticket, tokens, now = (
            first + 2 + ACQUIRE_TICKET,
            first + charge + CHARGE_TOKENS,
            first + charge + CHARGE_NOW,
        )
        costs = [first + 2 + acquire_cost(index) for index in range(len(buckets))]
        parts: list[bytes | None] = [bulk(item) for item in (len(keys), *keys, *args)]
        for changing in (ticket, tokens, now, *costs):
            parts[changing] = None
        token_buckets = sum(1 for bucket in buckets if bucket.kind == "tokens")
        prepared = _Prepared(
            shape, allocation.accounts, len(parts), parts, ticket, costs, tokens, now, token_buckets
        )
        if len(self._prepared) >= PREPARED_CALLS:
            self._prepared.clear()
        self._prepared[id(shape)] = prepared
        return prepared

    def failed(self, exc: RedisUnavailable) -> LimiterUnavailable:
        return self._calls.failed(exc)

    def release(
        self,
        prepared: _Prepared,
        refunds: list[tuple[Bucket, int]],
        slots: tuple[Slot, ...],
        ticket_id: str,
        ticket: bytes,
        tokens: int,
        gpu_seconds: float,
    ) -> None:
        """Post both releases as one (a part with nothing to do is left out); `ticket`: the
        ticket id packed."""
        if (tokens or gpu_seconds) and len(refunds) == prepared.token_buckets:
            packed = prepared.release or self._prepare_release(prepared, refunds, slots)
            parts = packed.parts.copy()  # its None places filled below
            parts[packed.ticket] = ticket
            for at, (_, refund) in zip(packed.refunds, refunds, strict=True):
                parts[at] = packed_value(refund)
            parts[packed.tokens] = packed_value(tokens)
            parts[packed.gpu] = packed_value(repr(float(gpu_seconds)))
            data = b"".join(parts)  # type: ignore[arg-type]
            self._calls.send_packed(
                self._release, packed.key_count, packed.keys, packed.arg_count, data
            )
            return
        limit_keys: list[Any] = []
        limit_args: list[Any] = []
        if refunds or slots:
            limit_keys, limit_args = self.limiter.settle_call(refunds, slots, ticket_id)
        charge_keys: list[Any] = []
        charge_args: list[Any] = []
        if tokens or gpu_seconds:
            charge_keys, charge_args = self.ledger.settle_call(
                prepared.accounts, tokens, gpu_seconds
            )
        self._calls.send(
            self._release,
            limit_keys + charge_keys,
            [len(limit_keys), len(limit_args), *limit_args, *charge_args],
        )

    def _prepare_release(
        self, prepared: _Prepared, refunds: list[tuple[Bucket, int]], slots: tuple[Slot, ...]
    ) -> _PreparedRelease:
        limit_keys, limit_args = self.limiter.settle_call(refunds, slots, "")
        charge_keys, charge_args = self.ledger.settle_call(prepared.accounts, 0, 0.0)
        keys = limit_keys + charge_keys
        args = [len(limit_keys), len(limit_args), *limit_args, *charge_args]
        charge = 2 + len(limit_args)
        ticket, tokens, gpu = 2 + SETTLE_TICKET, charge + SETTLE_TOKENS, charge + SETTLE_GPU
        places = [2 + settle_refund(index) for index in range(len(refunds))]
        parts: list[bytes | None] = [bulk(arg) for arg in args]
        for changing in (ticket, tokens, gpu, *places):
            parts[changing] = None
        packed_keys = b"".join(bulk(key) for key in keys)
        release = _PreparedRelease(
            len(keys), packed_keys, len(args), parts, ticket, places, tokens, gpu
        )
        prepared.release = release
        return release


@dataclass(slots=True)
class JointTicket:
    """What one joint admission charged, limits and allocations: released once, at the end of
    the request, as the limits' Ticket and the AllocationTicket would be, in one call."""

    joint: JointAdmission
    prepared: _Prepared  # its call, and its accounts
    id: str
    packed_id: bytes  # as the call carried it (resp.py)
    buckets: tuple[Bucket, ...]
    slots: tuple[Slot, ...]
    reserved: int
    outcome: RequestOutcome | None

    @property
    def accounts(self) -> tuple[Account, ...]:
        return self.prepared.accounts

    def release(self, used_tokens: int | None) -> None:
        refunds = token_refunds(self.buckets, used_tokens)
        tokens, gpu = correction(self.reserved, self.outcome, used_tokens)
        if refunds or self.slots or tokens or gpu:
            self.joint.release(
                self.prepared, refunds, self.slots, self.id, self.packed_id, tokens, gpu
            )


_joint: JointAdmission | None = None  # of the runtime's limiter and ledger (tests make many)


_runtime: object = None  # the runtime whose joint script `_of_runtime` is
_of_runtime: JointAdmission | None = None


def runtime_joint() -> JointAdmission | None:
    """The joint script of the current runtime's limiter and ledger, found once per runtime
    (the runtime builds each once; three function calls a request less)."""
    global _runtime, _of_runtime
    current = runtime.current
    if current is not _runtime:
        _of_runtime = joint_admission(current.limiter, current.allocations.ledger)
        _runtime = current
    return _of_runtime


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


# The ticket id, packed too, the call prepared, and the reply's future.
Sent = tuple[str, bytes, _Prepared, Any]


def send_jointly(joint: JointAdmission, planned: Plan, allocation: AllocationPlan) -> Sent | None:
    """Send the joint call, or None when Redis failed a moment ago and admission fails open.
    The caller awaits the future itself, then `decide_jointly` (one coroutine less in the
    chain that each reply resumes)."""
    ticket_id = new_id()
    ticket = bulk(ticket_id)
    try:
        return (ticket_id, ticket, *joint.start(planned, allocation, ticket))
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
    sent: Sent,
    out: list[Any],
) -> None:
    """The joint script's reply: the tickets kept, or the first refusal's 429."""
    ticket_id, ticket, prepared, _ = sent
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
                prepared,
                ticket_id,
                ticket,
                buckets,
                slots,
                allocation.tokens,
                request.outcome,
            )
        )
