"""The limits check of admission: which limits apply to (principal, endpoint), and one decision.

Per user (each principal on each endpoint): rpm_user, tpm_user, max_concurrent_user; for the
model (everyone on the endpoint together): rpm_model, tpm_model. Each comes from the
principal's override (the admin's LimitOverride, per-user fields only), else the endpoint row,
else the gateway default; 0 = unlimited. No limit -> no limiter call at all.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from resource_server_async import runtime
from resource_server_async.admission.demand import request_reservation
from resource_server_async.admission.limiter import (
    Bucket,
    Decision,
    Limiter,
    LimiterUnavailable,
    Slot,
)
from resource_server_async.admission.ticket import AdmissionState, Ticket, redis_failed
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.limit_overrides import UserLimits
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import GatewayError
from resource_server_async.unique_ids import new_id

NO_OVERRIDE = UserLimits()
# Operations that use no model time: admitted without limits (they count nothing).
UNLIMITED_OPERATIONS = frozenset({"messages/count_tokens"})


class AdmissionRequest(Protocol):
    """What admission reads of a request (the pipeline's ParsedRequest)."""

    principal: Principal
    body: dict[str, Any]
    raw: bytes
    operation: str
    admission: AdmissionState | None


class LimitRefusal(GatewayError):
    """429 from a limit; `per_endpoint` when it is the model's limit, which another endpoint
    serving the model does not share (routing moves on then)."""

    def __init__(self, message: str, retry_after: float, *, per_endpoint: bool) -> None:
        wait = max(retry_after, 0.001)
        super().__init__(
            429,
            "rate_limit_exceeded",
            message,
            headers={
                "Retry-After": str(math.ceil(wait)),
                "retry-after-ms": str(math.ceil(wait * 1000)),
            },
        )
        self.per_endpoint = per_endpoint


def _pick(override: int | None, row: int, default: int) -> int:
    if override is not None:
        return override
    return row or default


@dataclass(frozen=True, slots=True)
class Defaults:
    """The gateway-wide limits (LIMITS_DEFAULT_*) and key prefix, read once from settings: a
    Django setting costs a lazy-object lookup per read, and plan() runs per request."""

    rpm_user: int
    tpm_user: int
    concurrent: int
    rpm_model: int
    tpm_model: int
    prefix: str


_defaults: Defaults | None = None


def defaults() -> Defaults:
    global _defaults
    if _defaults is None:
        _defaults = Defaults(
            settings.LIMITS_DEFAULT_RPM_USER,
            settings.LIMITS_DEFAULT_TPM_USER,
            settings.LIMITS_DEFAULT_MAX_CONCURRENT_USER,
            settings.LIMITS_DEFAULT_RPM_MODEL,
            settings.LIMITS_DEFAULT_TPM_MODEL,
            settings.LIMITS_REDIS_PREFIX,
        )
    return _defaults


@receiver(setting_changed)
def _forget_defaults(**_: Any) -> None:
    global _defaults
    _defaults = None
    _plans.clear()


# The buckets (with this request's costs) and slots a request is to be charged, and the cached
# _Plan they come from: the same object for every request of a principal on an endpoint, so
# that a call's constant parts can be prepared once for it (joint.py).
Plan = tuple[tuple[Bucket, ...], tuple[Slot, ...], object]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What plan() decides for one principal on one endpoint, but for the token costs: the
    limits picked, the request buckets (cost 1 each, shared by every request) and the slots."""

    requests_user: Bucket | None
    tokens_user: tuple[str, int]  # (key, capacity); capacity 0: no limit
    requests_model: Bucket | None
    tokens_model: tuple[str, int]
    slots: tuple[Slot, ...]


# Plans by (endpoint slug, principal id), for the catalog snapshot `_plans_of`: a new snapshot
# (limits edited) starts afresh. At most PLAN_CACHE_ENTRIES (one per principal and endpoint in
# use); a full cache starts afresh too.
PLAN_CACHE_ENTRIES = 10_000
_plans: dict[tuple[str, str, frozenset[str]], _Plan | None] = {}
_plans_of: object = None


def _plan_of(row: Any, principal: Principal) -> _Plan | None:
    own = catalog.snapshot.limit_overrides.for_principal(principal) or NO_OVERRIDE
    gateway = _defaults or defaults()
    rpm_user = _pick(own.rpm, row.rpm_user, gateway.rpm_user)
    tpm_user = _pick(own.tpm, row.tpm_user, gateway.tpm_user)
    concurrent = _pick(own.concurrent, row.max_concurrent_user, gateway.concurrent)
    rpm_model = row.rpm_model or gateway.rpm_model
    tpm_model = row.tpm_model or gateway.tpm_model
    if not (rpm_user or tpm_user or concurrent or rpm_model or tpm_model):
        return None
    prefix = f"{gateway.prefix}{row.slug}:"
    user = f"{prefix}u:{principal.id}:"
    return _Plan(
        Bucket(user + "r", rpm_user, 1, "requests", "user") if rpm_user else None,
        (user + "t", tpm_user),
        Bucket(prefix + "r", rpm_model, 1, "requests", "model") if rpm_model else None,
        (prefix + "t", tpm_model),
        (Slot(user + "c", concurrent),) if concurrent else (),
    )


def plan(
    request: AdmissionRequest, endpoint: BaseEndpoint
) -> tuple[tuple[Bucket, ...], tuple[Slot, ...]]:
    """The buckets (with this request's cost) and slots that apply; both empty: no limits."""
    planned = _planned(request, endpoint)
    return ((), ()) if planned is None else (planned[0], planned[1])


def _planned(request: AdmissionRequest, endpoint: BaseEndpoint) -> Plan | None:
    global _plans_of
    row = endpoint.row
    principal = request.principal
    snapshot = catalog.snapshot
    if _plans_of is not snapshot or len(_plans) >= PLAN_CACHE_ENTRIES:
        _plans.clear()
        _plans_of = snapshot
    # Groups are part of the key: a Globus user's groups choose their override.
    key = (row.slug, principal.id, principal.groups)
    try:
        found = _plans[key]
    except KeyError:
        found = _plans[key] = _plan_of(row, principal)
    if found is None:
        return None
    buckets: list[Bucket] = []
    if found.requests_user is not None:
        buckets.append(found.requests_user)
    tpm_user, tpm_model = found.tokens_user[1], found.tokens_model[1]
    if tpm_user or tpm_model:
        tokens = request_reservation(request)
        if tpm_user:
            key_user = found.tokens_user[0]
            buckets.append(Bucket(key_user, tpm_user, min(tokens, tpm_user), "tokens", "user"))
    if found.requests_model is not None:
        buckets.append(found.requests_model)
    if tpm_model:
        key_model = found.tokens_model[0]
        buckets.append(Bucket(key_model, tpm_model, min(tokens, tpm_model), "tokens", "model"))
    return tuple(buckets), found.slots, found


@dataclass(slots=True)
class PendingLimits:
    """A limiter call sent and not answered yet (send_limits, finish_limits)."""

    limiter: Limiter
    ticket_id: str
    buckets: tuple[Bucket, ...]
    slots: tuple[Slot, ...]
    decision: Awaitable[Decision]


def limit_plan(request: AdmissionRequest, endpoint: BaseEndpoint) -> Plan | None:
    """The buckets and slots the request is to be charged (None: no limit applies)."""
    if request.operation in UNLIMITED_OPERATIONS:
        return None
    return _planned(request, endpoint)


def send_limits(planned: Plan | None) -> PendingLimits | None:
    """Send the request's limiter call (None: no limit applies, or Redis failed and admission
    fails open). Another check's call sent before finish_limits shares its write."""
    if planned is None:
        return None
    buckets, slots, _ = planned
    limiter = runtime.current.limiter
    ticket_id = new_id()
    try:
        decision = limiter.acquire(buckets, slots, ticket_id)
    except LimiterUnavailable as exc:
        redis_failed(exc, "limits_unavailable", "limits")
        return None
    return PendingLimits(limiter, ticket_id, buckets, slots, decision)


async def finish_limits(
    request: AdmissionRequest, endpoint: BaseEndpoint, pending: PendingLimits | None
) -> Ticket | None:
    """The limiter's answer: the ticket (kept on the request's AdmissionState), or a 429."""
    if pending is None:
        return None
    try:
        decision = await pending.decision
    except LimiterUnavailable as exc:
        redis_failed(exc, "limits_unavailable", "limits")
        return None
    return accept_limits(
        request,
        endpoint,
        pending.limiter,
        pending.ticket_id,
        pending.buckets,
        pending.slots,
        decision,
    )


def accept_limits(
    request: AdmissionRequest,
    endpoint: BaseEndpoint,
    limiter: Limiter,
    ticket_id: str,
    buckets: tuple[Bucket, ...],
    slots: tuple[Slot, ...],
    decision: Decision,
) -> Ticket:
    """A decision made: recorded for the headers, then the 429, or the ticket kept on the
    request's AdmissionState."""
    state = request.admission
    if state is not None:
        state.record(buckets, decision)
    if not decision.admitted:
        raise _refusal(endpoint, buckets, slots, decision.refused_by, decision.retry_after)
    ticket = Ticket(limiter, ticket_id, buckets, slots)
    if state is not None:
        state.tickets.append(ticket)
    return ticket


def _refusal(
    endpoint: BaseEndpoint,
    buckets: tuple[Bucket, ...],
    slots: tuple[Slot, ...],
    index: int,
    retry_after: float,
) -> LimitRefusal:
    model = endpoint.row.model
    if index >= len(buckets):
        slot = slots[index - len(buckets)]
        message = (
            f"Too many requests in flight: you may have {slot.limit} at once on {model!r}. "
            "Try again when one has finished."
        )
        return LimitRefusal(message, retry_after, per_endpoint=False)
    bucket = buckets[index]
    per = (
        "per minute"
        if settings.LIMITS_WINDOW_SECONDS == 60
        else (f"per {settings.LIMITS_WINDOW_SECONDS:g} s")
    )
    whose = "for you" if bucket.scope == "user" else "for everyone together"
    message = (
        f"Rate limit reached for {model!r}: {bucket.capacity} {bucket.kind} {per} {whose}. "
        f"Try again in {retry_after:.1f} s."
    )
    return LimitRefusal(message, retry_after, per_endpoint=bucket.scope == "model")
