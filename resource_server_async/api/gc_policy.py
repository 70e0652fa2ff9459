"""The worker's garbage-collection policy: long-lived objects kept out of full collections.

CPython's full (generation 2) collection walks every tracked object. With thousands of
streams open, each holding a few hundred objects for minutes, it walks millions of objects
for nothing (1.2-3 s at 9,900 streams, bench/RESULTS.md), and a request that arrives meanwhile
waits for it. So, every `GC_FREEZE_SECONDS`, the policy collects what is not frozen yet (only
what survived since the last tick: cheap) and freezes the survivors (`gc.freeze`): the
collector's automatic full collections then walk only objects younger than one tick.

Frozen objects are still freed by reference counting, but a frozen cycle is never collected:
a stream that closes after being frozen may leave its cycles behind (measured: the direct
path's streams leave none, bench/RESULTS.md). So when the heap has grown to `GC_THAW_GROWTH`
times its size after the last thaw, the policy unfreezes everything and runs one full
collection (the one long pause, at a tick, at most once per such growth), then freezes the
survivors again: frozen garbage stays below (growth - 1) times the heap at the last thaw.

The heap is measured by `sys.getallocatedblocks()` (a walk of pymalloc's arenas: a few
hundred per GB), not `gc.get_freeze_count()`, which walks the frozen objects' linked list:
measured, counting 2 million frozen objects each second cost a pause of about 200 ms.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Thaw:
    """One full collection the policy ran: the heap's blocks then, objects freed, its pause."""

    blocks: int
    collected: int
    seconds: float


class CollectorPolicy:
    """Freezes survivors each tick; thaws and collects all when the heap has grown."""

    def __init__(self, thaw_growth: float) -> None:
        if thaw_growth <= 1.0:
            raise ValueError("thaw_growth must be above 1")
        self._growth = thaw_growth
        self._thaw_above = 0
        self.thaws: list[Thaw] = []
        self._rebase()

    @property
    def thaw_above(self) -> int:
        """The heap's allocated blocks beyond which the next tick thaws."""
        return self._thaw_above

    def _rebase(self) -> None:
        self._thaw_above = int(sys.getallocatedblocks() * self._growth)

    def tick(self) -> None:
        blocks = sys.getallocatedblocks()
        if blocks > self._thaw_above:
            started = time.perf_counter()
            gc.unfreeze()
            collected = gc.collect()
            gc.freeze()
            thaw = Thaw(blocks, collected, time.perf_counter() - started)
            # Only the last few: enough for the bench and the tests, bounded for a worker
            # that runs for months.
            self.thaws = [*self.thaws[-7:], thaw]
            self._rebase()
            logger.info(
                "gc thaw: %d blocks allocated, %d objects collected, %.0f ms",
                thaw.blocks,
                thaw.collected,
                thaw.seconds * 1000,
            )
            return
        # Only the young generations are walked (bounded by the collector's thresholds, not by
        # the streams open); what reached the oldest since the last tick is frozen unwalked
        # (gc.freeze moves lists: no walk), garbage included, which the thaw bounds.
        gc.collect(1)
        gc.freeze()

    async def run(self, interval: float) -> None:
        """Tick every `interval` seconds until cancelled (the API's lifespan owns the task)."""
        while True:
            await asyncio.sleep(interval)
            self.tick()
