"""What a limiter decides and the interface of its two kinds (Redis, in-process).

Every limit is a token bucket (docs/limits.md): it holds up to `capacity` (the per-minute
limit), refills continuously at capacity / LIMITS_WINDOW_SECONDS, starts full, and a request
passes when the bucket holds its cost. A missing bucket is a full one, so state can expire.
Concurrency limits are slots: ticket ids with a lease, at most `limit` held at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["requests", "tokens"]
Scope = Literal["user", "model"]

# Made per request, so not frozen: a frozen dataclass's __init__ sets each field through
# object.__setattr__, about three times the cost. Nothing changes them after they are made.


@dataclass(slots=True)
class Bucket:
    """One rate limit that applies to a request, and what the request costs in it."""

    key: str
    capacity: int
    cost: int  # at most `capacity`: a request larger than the bucket passes only when it is full
    kind: Kind
    scope: Scope


@dataclass(slots=True)
class Slot:
    """One concurrency limit that applies to a request."""

    key: str
    limit: int


@dataclass(slots=True)
class Level:
    """A bucket after the decision (before it, for a refusal)."""

    remaining: int  # whole units left (never below 0 in headers; debts show as 0)
    reset: float  # seconds until the bucket is full again


@dataclass(slots=True)
class Decision:
    # Index of the first limit that refused (buckets first, then slots), or -1: admitted.
    refused_by: int
    retry_after: float  # seconds until the request could pass (0 when admitted)
    levels: tuple[Level, ...]  # one per bucket

    @property
    def admitted(self) -> bool:
        return self.refused_by < 0


class LimiterUnavailable(Exception):
    """The shared state (Redis) did not answer in time."""


class Limiter(Protocol):
    # Plain functions returning an awaitable: a shared limiter sends its call when called, so
    # that calls made before awaiting any go out together (redis_limiter.py).
    def acquire(
        self, buckets: Sequence[Bucket], slots: Sequence[Slot], ticket: str
    ) -> Awaitable[Decision]:
        """Check every limit and, only if all pass, charge them all, atomically."""
        ...

    def settle(
        self, refunds: Sequence[tuple[Bucket, int]], slots: Sequence[Slot], ticket: str
    ) -> Awaitable[None] | None:
        """Give back (or, negative, charge more of) token reservations; free the slots
        (None: sent, with no reply to wait for)."""
        ...

    async def close(self) -> None: ...


def build_limiter() -> Limiter:
    """Redis with REDIS_URL (shared by every worker and host), else in-process."""
    from django.conf import settings

    if settings.REDIS_URL:
        from resource_server_async.admission.redis_limiter import RedisLimiter

        return RedisLimiter.from_settings()
    from resource_server_async.admission.memory_limiter import MemoryLimiter

    return MemoryLimiter.from_settings()
