"""One suite for both fair queues: the in-process one and the Redis one (Lua scripts, pub/sub
grants) must serve alike. Requests here are places taken and released by the test itself, so
that the order of service is observed exactly; tests/admission/test_fair_share.py drives the
real gateway."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from resource_server_async.admission.capacity import PRIORITIES, Capacity, Place, QueueFull
from resource_server_async.admission.fair_queue import MemoryFairQueue
from resource_server_async.admission.redis_fair_queue import RedisFairQueue
from resource_server_async.admission.redis_scripts import RedisScripts
from tests.waiting import PATIENCE, wait_until_async

WAIT = 10.0  # a queue wait that never runs out in these tests, unless a test says otherwise


@pytest.fixture(params=["memory", "redis"])
async def capacity(request: pytest.FixtureRequest) -> AsyncIterator[Capacity]:
    if request.param == "redis":
        url = os.environ.get("REDIS_URL", "")
        if not url:
            pytest.skip("REDIS_URL is not set (the CI's second run sets it)")
        calls = RedisScripts(url, timeout=1, pending=1000)
        built: Capacity = RedisFairQueue(calls, prefix=f"test-fs:{uuid.uuid4().hex}:", lease=30)
    else:
        built = MemoryFairQueue()
    yield built
    await built.close()
    if request.param == "redis":
        await calls.close()


class Endpoint:
    """Places on one test endpoint, and the order in which waiting ones were served."""

    def __init__(self, capacity: Capacity, limit: int, **bounds: int) -> None:
        self.capacity = capacity
        self.limit = limit
        self.slug = f"e-{uuid.uuid4().hex[:8]}"
        self.bounds = {"max_queued": 100, "max_queued_project": 100, **bounds}
        self.served: list[str] = []

    def place(self, project: str, weight: float = 1, priority: str = "normal") -> Place:
        return Place(
            self.slug,
            self.limit,
            uuid.uuid4().hex,
            project,
            weight,
            PRIORITIES[priority],
            self.bounds["max_queued"],
            self.bounds["max_queued_project"],
        )

    async def take(self, place: Place, label: str, timeout: float = WAIT) -> bool:
        entered = await self.capacity.enter(place, timeout)
        if entered:
            self.served.append(label)
        return entered


async def queued(endpoint: Endpoint, count: int) -> None:
    """Return once `count` places wait in the endpoint's queue (an async wait_until_async)."""
    deadline = time.monotonic() + PATIENCE
    while await endpoint.capacity.queued(endpoint.slug) != count:
        assert time.monotonic() < deadline, f"{count} never queued"
        await asyncio.sleep(0.005)


async def fill(endpoint: Endpoint) -> list[Place]:
    """Take every slot of the endpoint (a project of its own), so that the next ones wait."""
    holders = [endpoint.place("u:holder") for _ in range(endpoint.limit)]
    for holder in holders:
        assert await endpoint.capacity.enter(holder, WAIT)
    return holders


async def test_a_free_endpoint_admits_at_once_up_to_its_limit(capacity: Capacity) -> None:
    endpoint = Endpoint(capacity, limit=3)
    places = [endpoint.place("u:a") for _ in range(3)]
    for place in places:
        assert await capacity.enter(place, WAIT)
    assert await capacity.has_room([(endpoint.slug, 3), (endpoint.slug, 4)]) == [False, True]
    extra = asyncio.create_task(endpoint.take(endpoint.place("u:a"), "extra"))
    await queued(endpoint, 1)
    await capacity.leave(places[0])
    assert await extra
    for place in places[1:]:
        await capacity.leave(place)


async def waiting_in_order(
    endpoint: Endpoint, places: list[tuple[Place, str]]
) -> list[asyncio.Task[bool]]:
    """Queue the places one after another (each one waiting before the next arrives)."""
    tasks: list[asyncio.Task[bool]] = []
    already = await endpoint.capacity.queued(endpoint.slug)
    for place, label in places:
        tasks.append(asyncio.create_task(endpoint.take(place, label)))
        await queued(endpoint, already + len(tasks))
    return tasks


async def test_projects_share_slots_by_weight_and_priority_orders_a_project(
    capacity: Capacity,
) -> None:
    endpoint = Endpoint(capacity, limit=1)
    (holder,) = await fill(endpoint)
    entries: list[tuple[Place, str]] = []
    # A (weight 2) queues 12 first, its last one high priority; then B (weight 1) queues 12.
    for index in range(12):
        priority = "high" if index == 11 else "normal"
        entries.append((endpoint.place("p:a", 2, priority), f"a{index}"))
    entries += [(endpoint.place("p:b", 1), f"b{i}") for i in range(12)]
    places = {label: place for place, label in entries}
    tasks = await waiting_in_order(endpoint, entries)

    await capacity.leave(holder)
    for count in range(1, len(tasks) + 1):
        await wait_until_async(lambda c=count: len(endpoint.served) == c)  # type: ignore[misc]
        await capacity.leave(places[endpoint.served[-1]])
    await asyncio.gather(*tasks)

    served = endpoint.served
    # A's high-priority request goes before A's others; the rest of each project in arrival.
    assert [s for s in served if s.startswith("a")] == ["a11"] + [f"a{i}" for i in range(11)]
    assert [s for s in served if s.startswith("b")] == [f"b{i}" for i in range(12)]
    # While both wait (the first 15 slots), 2:1 by weight: A 10, B 5, give or take a tie.
    assert 9 <= sum(s.startswith("a") for s in served[:15]) <= 11
    # A queued all of its 12 before B came, yet B's first request was not served last of all.
    assert served.index("b0") <= 2


async def test_a_newcomer_is_served_before_a_flood_that_queued_first(
    capacity: Capacity,
) -> None:
    endpoint = Endpoint(capacity, limit=2)
    holders = await fill(endpoint)
    flood = [(endpoint.place("u:noisy"), f"noisy{i}") for i in range(20)]
    tasks = await waiting_in_order(endpoint, flood)
    quiet = endpoint.place("u:quiet")
    tasks += await waiting_in_order(endpoint, [(quiet, "quiet")])
    places = {label: place for place, label in [*flood, (quiet, "quiet")]}

    await capacity.leave(holders[0])
    await wait_until_async(lambda: len(endpoint.served) == 1)
    await capacity.leave(holders[1])
    await wait_until_async(lambda: len(endpoint.served) == 2)
    # Of the first two slots freed, one goes to the quiet project, although 20 came first.
    assert "quiet" in endpoint.served
    for label in places:  # the rest, each released once it has been served
        await wait_until_async(lambda lb=label: lb in endpoint.served)  # type: ignore[misc]
        await capacity.leave(places[label])
    await asyncio.gather(*tasks)


async def test_the_wait_is_bounded_and_the_place_leaves_the_queue(capacity: Capacity) -> None:
    endpoint = Endpoint(capacity, limit=1)
    (holder,) = await fill(endpoint)
    late = endpoint.place("u:late")

    assert not await endpoint.take(late, "late", timeout=0.2)

    # Gone from the queue: the next request is served when the slot frees, not `late`.
    after = endpoint.place("u:after")
    waiting = asyncio.create_task(endpoint.take(after, "after"))
    await queued(endpoint, 1)
    await capacity.leave(holder)
    assert await waiting
    assert endpoint.served == ["after"]
    await capacity.leave(after)


async def test_the_queue_length_is_bounded_per_endpoint_and_per_project(
    capacity: Capacity,
) -> None:
    endpoint = Endpoint(capacity, limit=1, max_queued=3, max_queued_project=2)
    (holder,) = await fill(endpoint)
    tasks = await waiting_in_order(
        endpoint, [(endpoint.place("u:a"), "a0"), (endpoint.place("u:a"), "a1")]
    )
    with pytest.raises(QueueFull) as own:
        await capacity.enter(endpoint.place("u:a"), WAIT)
    assert own.value.project_full
    tasks += await waiting_in_order(endpoint, [(endpoint.place("u:b"), "b0")])
    with pytest.raises(QueueFull) as everyone:
        await capacity.enter(endpoint.place("u:c"), WAIT)
    assert not everyone.value.project_full
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await capacity.leave(holder)


async def test_a_cancelled_waiter_leaves_the_queue_at_once(capacity: Capacity) -> None:
    endpoint = Endpoint(capacity, limit=1, max_queued=1)
    (holder,) = await fill(endpoint)
    gone = asyncio.create_task(endpoint.take(endpoint.place("u:gone"), "gone"))
    await queued(endpoint, 1)

    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone

    # Its place is free (max_queued=1), and the slot goes to the next, not to the one gone.
    after = endpoint.place("u:after")
    waiting = asyncio.create_task(endpoint.take(after, "after"))
    await queued(endpoint, 1)
    await capacity.leave(holder)
    assert await waiting
    assert endpoint.served == ["after"]
    await capacity.leave(after)
    assert await capacity.has_room([(endpoint.slug, 1)]) == [True]


@pytest.mark.parametrize("comes_back", [True, False])
async def test_a_slot_given_back_is_kept_a_moment_for_a_one_at_a_time_user(
    capacity: Capacity, comes_back: bool
) -> None:
    grace = 0.3
    if isinstance(capacity, RedisFairQueue):
        capacity.grace_ms = int(grace * 1000)
    else:
        capacity.grace = grace  # type: ignore[attr-defined]
    endpoint = Endpoint(capacity, limit=2)
    quiet, noisy = endpoint.place("u:quiet"), endpoint.place("u:noisy")
    assert await capacity.enter(quiet, WAIT)
    assert await capacity.enter(noisy, WAIT)
    waiter = endpoint.place("u:noisy")
    tasks = await waiting_in_order(endpoint, [(waiter, "noisy")])

    await capacity.leave(quiet)  # the quiet user's request ends; the noisy one waits

    if comes_back:  # its next request, within the grace: the slot is still its own
        again = endpoint.place("u:quiet")
        assert await endpoint.take(again, "quiet", timeout=0.01)
        assert await capacity.queued(endpoint.slug) == 1
        await capacity.leave(again)  # (kept once more, and then served to the noisy one)
    await wait_until_async(lambda: "noisy" in endpoint.served)  # after the grace
    assert endpoint.served == (["quiet", "noisy"] if comes_back else ["noisy"])
    await asyncio.gather(*tasks)
    await capacity.leave(waiter)
    await capacity.leave(noisy)
