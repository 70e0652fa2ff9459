"""The worker's garbage-collection policy: long-lived objects kept out of full collections.

CPython's full (generation 2) collection walks every tracked object. With thousands of
streams open, each holding a few hundred objects for minutes, it walks millions of objects
for nothing (1.2-3 s at 9,900 streams, bench/RESULTS.md), and a request that arrives meanwhile
waits for it. So, every `GC_FREEZE_SECONDS`, the policy collects the young generations (a walk
bounded by the collector's thresholds, not by the streams open) and freezes every survivor
(`gc.freeze`: it moves lists, no walk): the collector's automatic full collections then walk
only objects younger than one tick.

Frozen objects are still freed by reference counting, but a frozen cycle is never collected:
a stream that closes after being frozen may leave its cycles behind (measured: the direct
path's streams leave none, bench/RESULTS.md). So when the heap has grown to `GC_THAW_GROWTH`
times its size after the last thaw, the policy unfreezes everything and runs one full
collection (the one long pause, at a tick, at most once per such growth), then freezes the
survivors again: frozen garbage stays below (growth - 1) times the heap at the last base.

Most growth is not garbage, though: while streams open, the heap grows with them, and a thaw
then would walk every open stream for nothing (three thaws of 0.5, 1.1 and 2.2 s while 9,900
opened). So when the requests in flight have grown by the same factor as the heap, the policy
takes the new heap as its base without a collection. That can happen at most
log_growth(most requests in flight) times in a row: garbage stays bounded.

The heap is measured by `sys.getallocatedblocks()` (a walk of pymalloc's arenas: a few
hundred per GB), not `gc.get_freeze_count()`, which walks the frozen objects' linked list:
measured, counting 2 million frozen objects each second cost a pause of about 200 ms. Even the
arena walk visits every 4 KiB pool (about 0.2 ms for a 100 MB heap), so it runs at most once per
HEAP_CHECK_SECONDS, not at every tick: a thaw comes that much later at most.

An idle worker has nothing to freeze: a tick that finds no collection since the last one and
hardly any new objects (QUIET_OBJECTS) parks the policy until the collector next runs on its own
(allocation resumed: `gc.callbacks` tells) or PARKED_TICKS intervals have passed, so an idle
worker wakes for it once every few seconds instead of five times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from resource_server_async.accounting import in_flight

logger = logging.getLogger(__name__)

# How often the heap is measured for a thaw; the ticks between only collect and freeze.
HEAP_CHECK_SECONDS = 1.0
# Fewer new tracked objects than this since the last tick, and no collection: nothing happened
# (an idle loop's timers allocate a handful, freed again), so the policy parks.
QUIET_OBJECTS = 256
# A parked policy ticks at least every this many intervals all the same (objects made since,
# too few for the collector to run, are frozen then).
PARKED_TICKS = 10


@dataclass(slots=True)
class Thaw:
    """One full collection the policy ran: the heap's blocks then, objects freed, its pause."""

    blocks: int
    collected: int
    seconds: float


class CollectorPolicy:
    """Freezes survivors each tick; thaws and collects all when the heap has grown."""

    def __init__(
        self,
        thaw_growth: float,
        serving: Callable[[], int] = lambda: in_flight.count,
        heap_check_seconds: float = HEAP_CHECK_SECONDS,
    ) -> None:
        if thaw_growth <= 1.0:
            raise ValueError("thaw_growth must be above 1")
        self._growth = thaw_growth
        self._serving = serving
        self._heap_check_seconds = heap_check_seconds
        self._next_heap_check = 0.0
        self._thaw_above = 0
        self._serving_at_base = 0
        self.thaws: list[Thaw] = []
        self.rebased_without_thaw = 0
        self.parked = 0  # times run() parked (an idle worker)
        self._rebase()

    @property
    def thaw_above(self) -> int:
        """The heap's allocated blocks beyond which the next tick thaws."""
        return self._thaw_above

    def _rebase(self) -> None:
        self._thaw_above = int(sys.getallocatedblocks() * self._growth)
        self._serving_at_base = self._serving()

    def tick(self) -> None:
        now = time.monotonic()
        if now >= self._next_heap_check:
            self._next_heap_check = now + self._heap_check_seconds
            if self._thawed(sys.getallocatedblocks()):
                return
        # Only the young generations are walked (bounded by the collector's thresholds, not by
        # the streams open); what reached the oldest since the last tick is frozen unwalked
        # (gc.freeze moves lists: no walk), garbage included, which the thaw bounds.
        gc.collect(1)
        gc.freeze()

    def _thawed(self, blocks: int) -> bool:
        """Thaw and collect everything if the heap outgrew its base (True), or take a heap that
        grew with the requests in flight as the new base."""
        if blocks > self._thaw_above and self._serving() >= self._growth * max(
            1, self._serving_at_base
        ):
            # The heap grew with the requests being answered: streams opening, not garbage.
            self.rebased_without_thaw += 1
            self._rebase()
        elif blocks > self._thaw_above:
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
            return True
        return False

    @staticmethod
    def quiet() -> bool:
        """Whether nothing happened since the last tick: no collection of the young generation
        (its count in the next one) and almost no new objects."""
        young, collections, _ = gc.get_count()
        return collections == 0 and young < QUIET_OBJECTS

    async def run(self, interval: float, parked_ticks: int = PARKED_TICKS) -> None:
        """Tick every `interval` seconds until cancelled (the API's lifespan owns the task);
        parked while the worker is quiet."""
        loop = asyncio.get_running_loop()
        activity = asyncio.Event()

        def collecting(phase: str, info: dict[str, int]) -> None:
            # Any thread that allocates may run the collector: hand the news to the loop.
            if phase == "start" and not activity.is_set():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(activity.set)

        while True:
            await asyncio.sleep(interval)
            if self.quiet():
                activity.clear()
                gc.callbacks.append(collecting)
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(interval * max(1, parked_ticks - 1)):
                            await activity.wait()
                finally:
                    gc.callbacks.remove(collecting)
                self.parked += 1
            self.tick()
