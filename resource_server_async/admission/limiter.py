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


class Decision:
    """What a limiter decided. The buckets' levels stay as the limiter reported them, a flat
    list from `start`: per bucket the units left (negative: a debt) and the milliseconds until
    it is full again (Redis's reply as it is: a request reads only what its headers need, so no
    Level objects are made per request)."""

    __slots__ = ("refused_by", "reported", "retry_after", "start")

    def __init__(
        self, refused_by: int, retry_after: float, reported: Sequence[float], start: int = 0
    ) -> None:
        # Index of the first limit that refused (buckets first, then slots), or -1: admitted.
        self.refused_by = refused_by
        self.retry_after = retry_after  # seconds until the request could pass (0: admitted)
        self.reported = reported
        self.start = start

    @property
    def admitted(self) -> bool:
        return self.refused_by < 0

    def remaining(self, index: int) -> int:
        """Whole units left in bucket `index` (0 for a debt)."""
        left = int(self.reported[self.start + 2 * index])
        return left if left > 0 else 0

    def reset(self, index: int) -> float:
        """Seconds until bucket `index` is full again."""
        return self.reported[self.start + 2 * index + 1] / 1000

    @property
    def levels(self) -> tuple[Level, ...]:
        count = (len(self.reported) - self.start) // 2
        return tuple(Level(self.remaining(i), self.reset(i)) for i in range(count))


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
