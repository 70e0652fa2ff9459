"""The limiter of a gateway without Redis: the same buckets and slots, in this process only."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from resource_server_async.admission.limiter import Bucket, Decision, Slot

# A slot refusal cannot know when a request ends: the client is told to try again in a second.
SLOT_RETRY_SECONDS = 1.0


class MemoryLimiter:
    """Buckets ([level, time]) and slot sets ({ticket: expiry}) under one bound of keys; the
    least recently used key is forgotten first (a forgotten bucket is full, a slot set empty).
    No await inside a decision, so each one is atomic on the event loop."""

    def __init__(
        self,
        *,
        window: float,
        max_keys: int,
        lease: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.max_keys = max_keys
        self.lease = lease
        self._clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()
        self._slots: OrderedDict[str, dict[str, float]] = OrderedDict()

    @classmethod
    def from_settings(cls) -> MemoryLimiter:
        from django.conf import settings

        return cls(
            window=settings.LIMITS_WINDOW_SECONDS,
            max_keys=settings.LIMITS_MEMORY_MAX_KEYS,
            lease=settings.LIMITS_SLOT_LEASE_SECONDS,
        )

    @property
    def keys(self) -> int:
        return len(self._buckets) + len(self._slots)

    def _level(self, bucket: Bucket, now: float) -> float:
        state = self._buckets.get(bucket.key)
        if state is None:
            return float(bucket.capacity)
        rate = bucket.capacity / self.window
        return min(float(bucket.capacity), state[0] + (now - state[1]) * rate)

    def _store(self, bucket: Bucket, level: float, now: float) -> None:
        if level >= bucket.capacity:
            self._buckets.pop(bucket.key, None)
            return
        self._buckets[bucket.key] = [level, now]
        self._buckets.move_to_end(bucket.key)
        self._bound()

    def _held(self, slot: Slot, now: float) -> dict[str, float]:
        held = self._slots.get(slot.key)
        if held is None:
            return {}
        for ticket in [t for t, expiry in held.items() if expiry <= now]:
            del held[ticket]
        return held

    def _bound(self) -> None:
        while self.keys > self.max_keys:
            if self._buckets:
                self._buckets.popitem(last=False)
            else:
                self._slots.popitem(last=False)

    async def acquire(
        self, buckets: Sequence[Bucket], slots: Sequence[Slot], ticket: str
    ) -> Decision:
        now = self._clock()
        levels = [self._level(bucket, now) for bucket in buckets]
        refused_by, retry = -1, 0.0
        for index, (bucket, level) in enumerate(zip(buckets, levels, strict=True)):
            if level < bucket.cost:
                retry = max(retry, (bucket.cost - level) * self.window / bucket.capacity)
                if refused_by < 0:
                    refused_by = index
        held = [self._held(slot, now) for slot in slots]
        for index, (slot, tickets) in enumerate(zip(slots, held, strict=True)):
            if len(tickets) >= slot.limit:
                retry = max(retry, SLOT_RETRY_SECONDS)
                if refused_by < 0:
                    refused_by = len(buckets) + index
        if refused_by < 0:
            for index, bucket in enumerate(buckets):
                levels[index] -= bucket.cost
                self._store(bucket, levels[index], now)
            for slot, tickets in zip(slots, held, strict=True):
                tickets[ticket] = now + self.lease
                self._slots[slot.key] = tickets
                self._slots.move_to_end(slot.key)
            self._bound()
        reported: list[float] = []
        for bucket, level in zip(buckets, levels, strict=True):
            reset = (bucket.capacity - level) * self.window / bucket.capacity
            reported += (max(0, int(level)), max(0.0, reset) * 1000)
        return Decision(refused_by, retry, reported)

    async def settle(
        self, refunds: Sequence[tuple[Bucket, int]], slots: Sequence[Slot], ticket: str
    ) -> None:
        now = self._clock()
        for bucket, refund in refunds:
            if refund and (bucket.key in self._buckets or refund < 0):
                self._store(bucket, self._level(bucket, now) + refund, now)
        for slot in slots:
            held = self._slots.get(slot.key)
            if held is not None:
                held.pop(ticket, None)
                if not held:
                    del self._slots[slot.key]

    async def close(self) -> None:
        self._buckets.clear()
        self._slots.clear()
