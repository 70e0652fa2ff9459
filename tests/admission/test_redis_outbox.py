"""Admission's releases bundled into one script per turn of the loop, against a real Redis."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as redis

from resource_server_async.admission.limiter import LimiterUnavailable
from resource_server_async.admission.redis_scripts import RedisScripts
from tests.waiting import PATIENCE, wait_until_async

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set (the CI's second run sets it)"
)

ADD = "redis.call('INCRBY', KEYS[1], ARGV[1]) return 0"
APPEND = "redis.call('APPEND', KEYS[1], ARGV[1]) return 0"
PENDING = 50


@pytest.fixture
async def calls() -> AsyncIterator[RedisScripts]:
    built = RedisScripts(os.environ["REDIS_URL"], timeout=2, pending=PENDING)
    yield built
    await built.close()


@pytest.fixture
async def plain() -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    await client.aclose()


async def eventually(check: Callable[[], Awaitable[object]]) -> None:
    """Until an asynchronous check holds (PATIENCE at most)."""
    deadline = time.monotonic() + PATIENCE
    while not await check():
        assert time.monotonic() < deadline, f"waited {PATIENCE} s for {check}"
        await asyncio.sleep(0.01)


async def commands_run(plain: redis.Redis) -> int:
    stats = await plain.info("commandstats")
    return sum(
        int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval")
    )


async def test_a_turns_releases_are_one_call_and_all_applied(
    calls: RedisScripts, plain: redis.Redis
) -> None:
    add, append = calls.register_release(ADD), calls.register_release(APPEND)
    counter, text = f"igw:test:outbox:{uuid.uuid4().hex}", f"igw:test:outbox:{uuid.uuid4().hex}"
    # Warm up: the first bundle may be sent whole (EVAL) after a NOSCRIPT.
    calls.send(add, [counter], [0])
    await eventually(lambda: plain.exists(counter))
    before = await commands_run(plain)

    for i in range(20):  # one turn of the loop: two scripts, interleaved
        calls.send(add, [counter], [1])
        calls.send(append, [text], [str(i % 10)])

    async def applied() -> bool:
        return int(await plain.get(counter) or 0) == 20

    await eventually(applied)
    assert await plain.get(text) == b"0123456789" * 2  # in the order sent
    # One script call for the 40 releases (commandstats also counts nothing else here: other
    # tests may share this Redis, so allow their calls but never one per release).
    assert await commands_run(plain) - before < 10
    await plain.delete(counter, text)


async def test_a_failing_release_does_not_stop_the_others(
    calls: RedisScripts, plain: redis.Redis
) -> None:
    add = calls.register_release(ADD)
    good, bad = f"igw:test:outbox:{uuid.uuid4().hex}", f"igw:test:outbox:{uuid.uuid4().hex}"
    await plain.set(bad, "not a number")
    calls.send(add, [bad], [1])  # INCRBY on a string fails inside the bundle
    calls.send(add, [good], [5])

    async def applied() -> bool:
        return int(await plain.get(good) or 0) == 5

    await eventually(applied)
    await wait_until_async(lambda: calls._outbox.failed == 1)
    assert await plain.get(bad) == b"not a number"
    await plain.delete(good, bad)


async def test_releases_waiting_are_bounded(calls: RedisScripts) -> None:
    add = calls.register_release(ADD)
    key = f"igw:test:outbox:{uuid.uuid4().hex}"
    for _ in range(PENDING):
        calls.send(add, [key], [1])
    with pytest.raises(LimiterUnavailable, match=f"{PENDING} releases already wait"):
        calls.send(add, [key], [1])
    await asyncio.sleep(0.05)  # let the bundle go; the fixture closes the connection
