"""An admitted request's hold on its limits, and the per-request record the middleware reads."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.admission.limiter import (
    Bucket,
    Decision,
    Limiter,
    LimiterUnavailable,
    Slot,
)

logger = logging.getLogger(__name__)


class Hold(Protocol):
    """What an admission check keeps until the request ends (a Ticket, an AllocationTicket)."""

    def release(self, used_tokens: int | None) -> Awaitable[None] | None:
        """Start the release (None: nothing to give back); AdmissionState awaits them all."""
        ...


@dataclass(slots=True)
class Ticket:
    """What one admission charged: released once, at the end of the request."""

    limiter: Limiter
    id: str
    buckets: tuple[Bucket, ...]
    slots: tuple[Slot, ...]

    def release(self, used_tokens: int | None) -> Awaitable[None] | None:
        """Free the slots; set the token reservations to `used_tokens` (None: keep them)."""
        refunds = token_refunds(self.buckets, used_tokens)
        if refunds or self.slots:
            return self.limiter.settle(refunds, self.slots, self.id)
        return None


def token_refunds(buckets: tuple[Bucket, ...], used_tokens: int | None) -> list[tuple[Bucket, int]]:
    """What each token bucket gets back (negative: is charged more) once the request used
    `used_tokens` (None: the reservations stay)."""
    refunds: list[tuple[Bucket, int]] = []
    if used_tokens is not None:
        for b in buckets:  # not a comprehension: one function call less (Python 3.11)
            if b.kind == "tokens" and b.cost != used_tokens:
                refunds.append((b, b.cost - used_tokens))
    return refunds


def used_tokens(outcome: RequestOutcome | None) -> int | None:
    """The tokens a finished request used: as reported (or estimated from its stream); 0 for a
    request that failed without usage; None (keep the reservation) for an answer without it."""
    if outcome is None:
        return None
    if outcome.total_tokens is not None:
        return outcome.total_tokens
    if 200 <= outcome.status < 300 and not outcome.error_code:
        return None
    return 0


class AdmissionState:
    """One per inference request (admission/middleware.py): the tickets taken, and the last
    decision with its buckets, for the rate-limit headers."""

    __slots__ = ("buckets", "decision", "last_attempt", "reserved", "tickets")

    def __init__(self) -> None:
        self.tickets: list[Hold] = []
        self.buckets: tuple[Bucket, ...] = ()
        self.decision: Decision | None = None
        self.last_attempt = 0  # index of the first ticket of the last endpoint tried
        self.reserved = -1  # the request's token reservation, once computed (demand.py)

    def begin_attempt(self) -> None:
        """Admission of one more endpoint starts: the tickets before are of endpoints left."""
        self.last_attempt = len(self.tickets)

    def record(self, buckets: tuple[Bucket, ...], decision: Decision) -> None:
        self.buckets, self.decision = buckets, decision

    async def release(self, outcome: RequestOutcome | None) -> None:
        """Release every ticket (start_release), and wait for the releases that answer."""
        waiting = self.start_release(outcome)
        if waiting is not None:
            await waiting

    def start_release(self, outcome: RequestOutcome | None) -> Awaitable[None] | None:
        """Start releasing every ticket: endpoints left for another (failover) used nothing,
        the last one's tickets what the request used. Every release is started before any is
        awaited; on Redis, limits and allocations are not awaited at all: they join this turn's
        bundle of releases (redis_outbox.py), and a failure is logged when Redis answers. None:
        nothing to wait for (no coroutine made: the end of every request with limits runs this)."""
        last = self.last_attempt
        used = used_tokens(outcome)
        started: list[Awaitable[None]] = []
        for index, ticket in enumerate(self.tickets):
            try:
                release = ticket.release(used if index >= last else 0)
            except Exception as exc:
                _release_failed(exc)
                continue
            if release is not None:
                started.append(release)
        self.tickets.clear()
        return _wait_for(started) if started else None


async def _wait_for(started: list[Awaitable[None]]) -> None:
    for release in started:
        try:
            await release
        except Exception as exc:
            _release_failed(exc)


def _release_failed(exc: Exception) -> None:
    if isinstance(exc, LimiterUnavailable):
        # The slots free themselves when their lease ends; tokens stay reserved.
        warn_rarely(f"admission: a release failed ({exc}); its slots wait for their lease")
    else:
        logger.exception("admission: a release failed", exc_info=exc)


_WARN_INTERVAL = 60.0
_last_warning = 0.0


def redis_failed(exc: LimiterUnavailable, code: str, checks: str) -> None:
    """Redis did not answer a decision: LIMITS_REDIS_FAILURE=closed raises 503 `code`; open
    admits without `checks` (and says so in the log, rarely)."""
    from django.conf import settings

    from resource_server_async.errors import GatewayError

    if settings.LIMITS_REDIS_FAILURE == "closed":
        raise GatewayError(
            503,
            code,
            f"The gateway cannot check {checks} right now; try again shortly.",
            headers={"Retry-After": "1"},
        ) from exc
    warn_rarely(f"admission: Redis did not answer ({exc}); admitting without {checks}")


def warn_rarely(message: str) -> None:
    """A warning at most once a minute per process (an outage must not flood the log)."""
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _WARN_INTERVAL:
        _last_warning = now
        logger.warning("%s (repeats are not logged for %.0f s)", message, _WARN_INTERVAL)
