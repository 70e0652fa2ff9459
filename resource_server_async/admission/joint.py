"""Limits and allocations decided in one Redis script, when both apply and both are on Redis.

Separately, a request that meets both costs two script calls, two replies and two futures; and
when one refuses, the other has charged already and gives it back at the request's end. The
joint script runs the limiter's ACQUIRE, then, only if the limits pass, the ledger's CHARGE; if
an allocation refuses, it gives the limits back in the same step (the limiter's SETTLE, with
each bucket's cost as its refund, the ticket's slots freed). All or nothing, one round trip.
The scripts are the limiter's and the ledger's own, as functions of their own KEYS and ARGV.
"""

from __future__ import annotations

from typing import Any

from resource_server_async import runtime
from resource_server_async.admission.allocation_ledger import CHARGE, RedisLedger, charged
from resource_server_async.admission.allocations import (
    AllocationPlan,
    AllocationRefusal,
    AllocationRequest,
    accept_charge,
)
from resource_server_async.admission.limiter import LimiterUnavailable
from resource_server_async.admission.limits import Plan, accept_limits
from resource_server_async.admission.redis_limiter import ACQUIRE, SETTLE, RedisLimiter, decided
from resource_server_async.admission.redis_pipe import RedisUnavailable
from resource_server_async.admission.ticket import redis_failed
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


class JointAdmission:
    """The joint script of one limiter and one ledger sharing one Redis connection."""

    def __init__(self, limiter: RedisLimiter, ledger: RedisLedger) -> None:
        self.limiter = limiter
        self.ledger = ledger
        self._calls = limiter.calls
        self._script = self._calls.register(JOINT)

    def start(self, planned: Plan, allocation: AllocationPlan, ticket_id: str) -> Any:
        buckets, slots = planned
        limit_keys, limit_args = self.limiter.acquire_call(buckets, slots, ticket_id)
        charge_keys, charge_args = self.ledger.charge_call(
            allocation.accounts, allocation.tokens, allocation.now
        )
        keys = limit_keys + charge_keys
        return self._calls.start(
            self._script, keys, [len(limit_keys), len(limit_args), *limit_args, *charge_args]
        )

    def failed(self, exc: RedisUnavailable) -> LimiterUnavailable:
        return self._calls.failed(exc)


_joints: dict[tuple[int, int], JointAdmission] = {}


def joint_admission(limiter: Any, ledger: Any) -> JointAdmission | None:
    """The joint script for this limiter and ledger (None: not both on one Redis connection)."""
    if not isinstance(limiter, RedisLimiter) or not isinstance(ledger, RedisLedger):
        return None
    if limiter.calls is not ledger.calls:
        return None
    joint = _joints.get((id(limiter), id(ledger)))
    if joint is None or joint.limiter is not limiter or joint.ledger is not ledger:
        _joints.clear()  # a new runtime (tests start many): the old pair is gone
        joint = _joints[(id(limiter), id(ledger))] = JointAdmission(limiter, ledger)
    return joint


async def admit_jointly(
    request: AllocationRequest,
    endpoint: BaseEndpoint,
    joint: JointAdmission,
    planned: Plan,
    allocation: AllocationPlan,
) -> None:
    """Limits and allocations in one script: the tickets kept, or the first refusal's 429."""
    ticket_id = new_id()
    try:
        try:
            out = await joint.start(planned, allocation, ticket_id)
        except RedisUnavailable as exc:
            raise joint.failed(exc) from exc
    except LimiterUnavailable as exc:
        redis_failed(exc, "limits_unavailable", "limits and allocations")
        return
    buckets, slots = planned
    decision = decided(out[0])
    if len(out) == 1:  # the limits refused: accept_limits raises their 429
        accept_limits(request, endpoint, joint.limiter, ticket_id, buckets, slots, decision)
        return
    charge = charged(out[1])
    if not charge.admitted:
        # The script gave the limits back: no ticket to release, only the headers to send.
        if request.admission is not None:
            request.admission.record(buckets, decision)
        if charge.fresh:
            runtime.current.allocations.wake()
        raise AllocationRefusal(allocation.applying[charge.refused_by], allocation.now)
    accept_limits(request, endpoint, joint.limiter, ticket_id, buckets, slots, decision)
    accept_charge(request, joint.ledger, allocation, charge)
