"""The worker's GC policy: survivors frozen each tick, frozen garbage bounded by the thaws."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from resource_server_async.api.gc_policy import QUIET_OBJECTS, CollectorPolicy
from tests.test_runtime import run_start_up_probe
from tests.waiting import wait_until_async

ROOT = Path(__file__).resolve().parent.parent


class Stream:
    """Stands for an open stream's objects: a cycle (as a task, its frame and its response
    make), so that only a collection frees it once dropped."""

    def __init__(self) -> None:
        self.parts = [{"chunk": index, "owner": self} for index in range(50)]


@pytest.fixture
def collector_state() -> Iterator[None]:
    """Everything before the test frozen (its counts are then the test's own objects), and
    the test's freezes undone after it (a start-up freeze of the process put back)."""
    was_frozen = gc.get_freeze_count() > 0
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    gc.collect()
    if was_frozen:
        gc.freeze()


def _tracked(objects: list[object]) -> int:
    tracked = {id(o) for o in gc.get_objects()}
    return sum(id(o) in tracked for o in objects)


def test_a_tick_freezes_the_survivors_and_collects_the_garbage(collector_state: None) -> None:
    policy = CollectorPolicy(thaw_growth=1_000.0)
    held = [Stream() for _ in range(20)]
    dropped = [Stream() for _ in range(20)]
    del dropped
    frozen_before = gc.get_freeze_count()

    policy.tick()

    # Out of the collector's walks (gc.get_objects lists only what it walks) ...
    assert _tracked([*held, *(part for s in held for part in s.parts)]) == 0
    # ... and the dropped cycles were collected first, not frozen.
    grown = gc.get_freeze_count() - frozen_before
    assert 20 * 51 <= grown < 2 * 20 * 51


def test_frozen_garbage_stays_bounded_over_many_stream_cycles(collector_state: None) -> None:
    policy = CollectorPolicy(thaw_growth=2.0, serving=lambda: 200, heap_check_seconds=0)
    idle = sys.getallocatedblocks()
    round_of_streams = [Stream() for _ in range(200)]
    one_round = sys.getallocatedblocks() - idle
    del round_of_streams
    most = 0
    # Enough rounds for their garbage to outgrow the heap twice, however large the test
    # process's heap already is.
    for _ in range(2 * idle // one_round + 10):
        # Streams open, are frozen while open, then close: their cycles become frozen garbage.
        open_streams = [Stream() for _ in range(200)]
        policy.tick()
        del open_streams
        policy.tick()
        most = max(most, sys.getallocatedblocks())

    assert policy.thaws, "never thawed: frozen garbage would grow without end"
    assert max(thaw.collected for thaw in policy.thaws) >= 200 * 51
    # At most `growth` times the heap at the last thaw (idle plus one round of streams), plus
    # the round that opens before the tick that sees it.
    assert most <= 2.0 * (idle + one_round) + one_round
    assert len(policy.thaws) <= 8  # the history kept is bounded too


def test_streams_opening_grow_the_heap_without_a_thaw(collector_state: None) -> None:
    serving = [0]
    policy = CollectorPolicy(thaw_growth=2.0, serving=lambda: serving[0], heap_check_seconds=0)
    opened: list[Stream] = []
    start = sys.getallocatedblocks()
    while sys.getallocatedblocks() < 5 * start:
        # The heap grows with the requests in flight, as when thousands of streams open.
        opened.extend(Stream() for _ in range(200))
        serving[0] = len(opened)
        policy.tick()

    assert policy.rebased_without_thaw >= 2  # the heap did double, more than once
    assert policy.thaws == []  # and no tick walked the open streams for it


def test_a_heap_that_outgrows_the_requests_in_flight_is_thawed(collector_state: None) -> None:
    # As many streams open throughout, each replaced as it closes.
    policy = CollectorPolicy(thaw_growth=2.0, serving=lambda: 200, heap_check_seconds=0)
    idle = sys.getallocatedblocks()
    for _ in range(2 * idle // (200 * 51) + 10):
        open_streams = [Stream() for _ in range(200)]
        policy.tick()
        del open_streams
        policy.tick()

    assert policy.thaws
    assert policy.rebased_without_thaw == 0


def test_the_heap_is_measured_once_per_check_interval_and_frozen_at_every_tick(
    collector_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured: list[int] = []
    real = sys.getallocatedblocks

    def counting() -> int:
        measured.append(1)
        return real()

    policy = CollectorPolicy(thaw_growth=1_000.0, heap_check_seconds=3600)
    monkeypatch.setattr(sys, "getallocatedblocks", counting)
    for _ in range(5):
        held = [Stream() for _ in range(5)]
        policy.tick()
        assert _tracked(held) == 0  # frozen at each tick all the same

    assert len(measured) == 1  # the first tick's check; the next is an hour away


class CountingPolicy(CollectorPolicy):
    ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        super().tick()


def test_a_quiet_worker_parks_the_policy_until_objects_come(collector_state: None) -> None:
    policy = CountingPolicy(thaw_growth=1_000.0, heap_check_seconds=3600)

    async def scenario() -> tuple[int, int, bool]:
        running = asyncio.get_running_loop().create_task(policy.run(0.005, parked_ticks=1000))
        # Nothing allocated: after the first ticks the policy parks (awake, it would tick
        # about 60 times in 0.3 s).
        await asyncio.sleep(0.3)
        quiet_ticks = policy.ticks
        # Work resumes: enough new objects for the collector to run on its own, which wakes
        # the policy, and its next tick freezes them.
        held = [[n] for n in range(5 * gc.get_threshold()[0])]
        await wait_until_async(lambda: _tracked(held[-100:]) == 0)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        return quiet_ticks, policy.parked, _tracked(held) == 0

    quiet_ticks, parked, frozen = asyncio.run(scenario())
    assert quiet_ticks < 10
    assert parked >= 1
    assert frozen
    assert collecting_callbacks() == 0  # the policy's callback went with its task


def collecting_callbacks() -> int:
    return sum(getattr(cb, "__qualname__", "").endswith("collecting") for cb in gc.callbacks)


def test_a_busy_worker_ticks_every_interval(collector_state: None) -> None:
    policy = CountingPolicy(thaw_growth=1_000.0, heap_check_seconds=3600)

    async def scenario() -> int:
        running = asyncio.get_running_loop().create_task(policy.run(0.01, parked_ticks=1000))
        kept = []
        for _ in range(30):  # objects made between every two ticks
            kept.append([[n] for n in range(4 * QUIET_OBJECTS)])
            await asyncio.sleep(0.01)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        return policy.parked

    assert asyncio.run(scenario()) == 0


def test_growth_must_be_above_one() -> None:
    with pytest.raises(ValueError, match="above 1"):
        CollectorPolicy(thaw_growth=1.0)


# Starts the app's lifespan in a fresh interpreter, makes an object after start-up, and says
# whether it is still in the collector's walks a few ticks later.
_LIFESPAN_PROBE = """
import asyncio, gc, json
import django
django.setup()
from resource_server_async.api.app import build_app, lifespan
from resource_server_async.api.gc_policy import PARKED_TICKS
async def main():
    async with lifespan(build_app()):
        held = [[n] for n in range(100)]  # lists: always tracked
        # A few objects do not wake a parked (idle) policy: it ticks within PARKED_TICKS.
        await asyncio.sleep(0.05 * PARKED_TICKS + 0.5)
        tracked = {id(o) for o in gc.get_objects()}
        print(json.dumps({"frozen": not any(id(o) in tracked for o in held)}))
asyncio.run(main())
"""


def _after_start_up(tmp_path: Path, freeze_seconds: str) -> bool:
    # The catalog's refresher would log its failure (no tables) after the answer: kept away.
    started = run_start_up_probe(
        _LIFESPAN_PROBE,
        tmp_path,
        GC_FREEZE_SECONDS=freeze_seconds,
        CATALOG_REFRESH_SECONDS="60",
    )
    return started["frozen"] is True


def test_the_setting_starts_the_policy_with_the_app(tmp_path: Path) -> None:
    assert _after_start_up(tmp_path, "0.05") is True


def test_zero_leaves_later_objects_to_cpythons_thresholds(tmp_path: Path) -> None:
    assert _after_start_up(tmp_path, "0") is False
