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

from resource_server_async import runtime
from resource_server_async.admission.demand import reserved_tokens
from resource_server_async.admission.limiter import (
    Bucket,
    Decision,
    Kind,
    Limiter,
    LimiterUnavailable,
    Scope,
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


def plan(
    request: AdmissionRequest, endpoint: BaseEndpoint
) -> tuple[tuple[Bucket, ...], tuple[Slot, ...]]:
    """The buckets (with this request's cost) and slots that apply; both empty: no limits."""
    row = endpoint.row
    principal = request.principal
    own = catalog.snapshot.limit_overrides.for_principal(principal) or NO_OVERRIDE
    rpm_user = _pick(own.rpm, row.rpm_user, settings.LIMITS_DEFAULT_RPM_USER)
    tpm_user = _pick(own.tpm, row.tpm_user, settings.LIMITS_DEFAULT_TPM_USER)
    concurrent = _pick(
        own.concurrent, row.max_concurrent_user, settings.LIMITS_DEFAULT_MAX_CONCURRENT_USER
    )
    rpm_model = row.rpm_model or settings.LIMITS_DEFAULT_RPM_MODEL
    tpm_model = row.tpm_model or settings.LIMITS_DEFAULT_TPM_MODEL
    if not (rpm_user or tpm_user or concurrent or rpm_model or tpm_model):
        return (), ()
    prefix = f"{settings.LIMITS_REDIS_PREFIX}{row.slug}:"
    user = f"{prefix}u:{principal.id}:"
    buckets: list[Bucket] = []
    tokens = 0
    if tpm_user or tpm_model:
        tokens = reserved_tokens(
            request.operation,
            request.body,
            len(request.raw),
            settings.LIMITS_RESERVE_COMPLETION_TOKENS,
        )

    def add(limit: int, key: str, kind: Kind, scope: Scope, cost: int) -> None:
        if limit:
            buckets.append(Bucket(key, limit, min(cost, limit), kind, scope))

    add(rpm_user, user + "r", "requests", "user", 1)
    add(tpm_user, user + "t", "tokens", "user", tokens)
    add(rpm_model, prefix + "r", "requests", "model", 1)
    add(tpm_model, prefix + "t", "tokens", "model", tokens)
    slots = (Slot(user + "c", concurrent),) if concurrent else ()
    return tuple(buckets), slots


@dataclass(slots=True)
class PendingLimits:
    """A limiter call sent and not answered yet (start_limits, finish_limits)."""

    limiter: Limiter
    ticket_id: str
    buckets: tuple[Bucket, ...]
    slots: tuple[Slot, ...]
    decision: Awaitable[Decision]


def start_limits(request: AdmissionRequest, endpoint: BaseEndpoint) -> PendingLimits | None:
    """Send the request's limiter call (None: no limit applies, or Redis failed and admission
    fails open). Another check's call started before finish_limits shares its write."""
    if request.operation in UNLIMITED_OPERATIONS:
        return None
    buckets, slots = plan(request, endpoint)
    if not buckets and not slots:
        return None
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
    limiter, ticket_id, buckets, slots = (
        pending.limiter,
        pending.ticket_id,
        pending.buckets,
        pending.slots,
    )
    try:
        decision = await pending.decision
    except LimiterUnavailable as exc:
        redis_failed(exc, "limits_unavailable", "limits")
        return None
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
