"""One suite for both limiters: the in-process one and the Redis one (one Lua script per
decision) must decide alike. Short windows keep it fast; waits go through tests/waiting.py."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from resource_server_async.admission.limiter import Bucket, Limiter, Slot
from resource_server_async.admission.memory_limiter import MemoryLimiter
from resource_server_async.admission.redis_limiter import RedisLimiter
from resource_server_async.admission.redis_scripts import RedisScripts
from tests.admission.releases import settled
from tests.waiting import PATIENCE

WINDOW = 1.0  # seconds: a full bucket refills in one second


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    if request.param == "redis":
        url = os.environ.get("REDIS_URL", "")
        if not url:
            pytest.skip("REDIS_URL is not set (the CI's second run sets it)")
        calls = RedisScripts(url, timeout=1, pending=100)
        built: Limiter = RedisLimiter(calls, window=WINDOW, lease=30)
    else:
        built = MemoryLimiter(window=WINDOW, max_keys=1000, lease=30)
    yield built
    await built.close()
    if request.param == "redis":
        await calls.close()


async def until_admitted(limiter: Limiter, buckets: list[Bucket], slots: list[Slot]) -> None:
    """Ask until admitted (refusals charge nothing); fail after PATIENCE seconds."""
    deadline = time.monotonic() + PATIENCE
    while not (await limiter.acquire(buckets, slots, uuid.uuid4().hex)).admitted:
        assert time.monotonic() < deadline, "never admitted"
        await asyncio.sleep(0.005)


def key() -> str:
    return f"test-limits:{uuid.uuid4().hex}"


def requests(capacity: int, name: str | None = None) -> Bucket:
    return Bucket(name or key(), capacity, 1, "requests", "user")


def tokens(capacity: int, cost: int, name: str | None = None) -> Bucket:
    return Bucket(name or key(), capacity, cost, "tokens", "user")


async def test_a_full_bucket_admits_its_capacity_then_says_how_long_to_wait(
    limiter: Limiter,
) -> None:
    bucket = requests(5)
    decisions = [await limiter.acquire([bucket], [], uuid.uuid4().hex) for _ in range(6)]

    assert [d.admitted for d in decisions] == [True] * 5 + [False]
    assert [d.levels[0].remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    # One request refills in window / capacity = 0.2 s.
    assert 0.1 < decisions[5].retry_after <= 0.2
    assert decisions[4].levels[0].reset == pytest.approx(WINDOW, abs=0.05)


async def test_the_wait_it_names_is_the_wait_it_means(limiter: Limiter) -> None:
    bucket = requests(2)
    for _ in range(2):
        assert (await limiter.acquire([bucket], [], "t")).admitted
    refused = await limiter.acquire([bucket], [], "t")
    assert not refused.admitted
    started = time.monotonic()

    await until_admitted(limiter, [bucket], [])

    waited = time.monotonic() - started
    assert waited == pytest.approx(refused.retry_after, abs=0.1)


async def test_all_limits_or_none_are_charged(limiter: Limiter) -> None:
    roomy, tight = requests(10), requests(1)
    assert (await limiter.acquire([roomy, tight], [], "a")).admitted

    refused = await limiter.acquire([roomy, tight], [], "b")

    assert refused.refused_by == 1
    assert refused.levels[0].remaining == 9  # the roomy one was not charged for the refusal
    after = await limiter.acquire([roomy], [], "c")
    assert after.levels[0].remaining == 8


async def test_a_reservation_is_corrected_to_the_usage(limiter: Limiter) -> None:
    name = key()
    first = await limiter.acquire([tokens(1000, 300, name)], [], "a")
    assert first.levels[0].remaining == 700

    await settled(limiter.settle([(tokens(1000, 300, name), 300 - 50)], [], "a"))  # used 50

    later = await limiter.acquire([tokens(1000, 10, name)], [], "b")
    # 1000 - 50 - 10, and what refilled meanwhile (a token a millisecond).
    assert 940 <= later.levels[0].remaining <= 960


async def test_usage_beyond_the_reservation_is_a_debt(limiter: Limiter) -> None:
    name = key()
    assert (await limiter.acquire([tokens(100, 10, name)], [], "a")).admitted
    await settled(limiter.settle([(tokens(100, 10, name), 10 - 150)], [], "a"))  # used 150

    refused = await limiter.acquire([tokens(100, 10, name)], [], "b")

    assert not refused.admitted
    assert refused.levels[0].remaining == 0
    # 50 tokens of debt plus the 10 asked for: 0.6 of the window.
    assert refused.retry_after == pytest.approx(0.6, abs=0.05)


async def test_a_request_larger_than_the_bucket_is_clamped_by_the_caller(
    limiter: Limiter,
) -> None:
    # plan() clamps costs to the capacity: such a request passes on a full bucket only.
    bucket = tokens(100, 100)
    assert (await limiter.acquire([bucket], [], "a")).admitted
    assert not (await limiter.acquire([bucket], [], "b")).admitted


async def test_slots_bound_requests_in_flight_until_released(limiter: Limiter) -> None:
    slot = Slot(key(), 2)
    assert (await limiter.acquire([], [slot], "a")).admitted
    assert (await limiter.acquire([], [slot], "b")).admitted

    refused = await limiter.acquire([], [slot], "c")
    assert refused.refused_by == 0 and refused.retry_after == 1.0

    await settled(limiter.settle([], [slot], "a"))
    assert (await limiter.acquire([], [slot], "c")).admitted


async def test_a_slot_never_released_frees_itself_when_its_lease_ends(limiter: Limiter) -> None:
    if isinstance(limiter, RedisLimiter):
        short: Limiter = RedisLimiter(limiter._calls, window=WINDOW, lease=0.3)
    else:
        short = MemoryLimiter(window=WINDOW, max_keys=10, lease=0.3)
    slot = Slot(key(), 1)
    try:
        assert (await short.acquire([], [slot], "lost")).admitted
        assert not (await short.acquire([], [slot], "next")).admitted

        await until_admitted(short, [], [slot])
    finally:
        await short.close()


async def test_a_refused_request_charges_nothing(limiter: Limiter) -> None:
    bucket, slot = requests(1), Slot(key(), 1)
    assert (await limiter.acquire([bucket], [slot], "a")).admitted
    await settled(limiter.settle([], [slot], "a"))
    assert not (await limiter.acquire([bucket], [slot], "b")).admitted
    # The slot was not taken by the refusal.
    assert (await limiter.acquire([], [slot], "c")).admitted


async def test_the_in_process_state_is_bounded() -> None:
    limiter = MemoryLimiter(window=60, max_keys=50, lease=30)
    first = requests(1)
    assert (await limiter.acquire([first], [], "a")).admitted
    assert not (await limiter.acquire([first], [], "b")).admitted
    for _ in range(500):
        await limiter.acquire([requests(5)], [Slot(key(), 3)], uuid.uuid4().hex)

    assert limiter.keys <= 50
    # A forgotten bucket is a full one: the oldest principal starts afresh.
    assert (await limiter.acquire([first], [], "c")).admitted
