"""The stream hub (in-process, and Redis Streams when REDIS_URL is set) and the task tokens."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from resource_server_async.streaming import (
    DATA,
    DONE,
    FINISHED,
    LocalStreamHub,
    Published,
    RedisStreamHub,
    StreamEvent,
    StreamHub,
    issue_token,
    token_matches,
)


@pytest.fixture(params=["memory", "redis"])
async def hub(request: pytest.FixtureRequest) -> AsyncIterator[StreamHub]:
    if request.param == "memory":
        yield LocalStreamHub(backlog=3)
        return
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("REDIS_URL is not set (the CI's second run sets it)")
    redis_hub = RedisStreamHub(url, f"test-{uuid.uuid4().hex}:", backlog=3, longest_wait=5)
    yield redis_hub
    await redis_hub.close()


async def test_events_reach_the_subscription_in_order(hub: StreamHub) -> None:
    subscription = await hub.open("task-a", lifetime=60)

    for text in ("one", "two"):
        assert await hub.publish("task-a", StreamEvent(DATA, text)) is Published.ACCEPTED
    assert await hub.publish("task-a", StreamEvent(DONE)) is Published.ACCEPTED

    assert await subscription.next(1) == StreamEvent(DATA, "one")
    assert await subscription.next(1) == StreamEvent(DATA, "two")
    assert await subscription.next(1) == StreamEvent(DONE)
    await subscription.close()


async def test_unknown_and_closed_streams_refuse_events(hub: StreamHub) -> None:
    assert await hub.publish("never-opened", StreamEvent(DATA, "x")) is Published.UNKNOWN
    subscription = await hub.open("task-b", lifetime=60)
    await subscription.close()

    assert await hub.publish("task-b", StreamEvent(DATA, "x")) is Published.UNKNOWN


async def test_backlog_is_bounded_but_the_gateways_own_events_pass(hub: StreamHub) -> None:
    subscription = await hub.open("task-c", lifetime=60)

    results = [await hub.publish("task-c", StreamEvent(DATA, str(i))) for i in range(4)]
    finished = await hub.publish("task-c", StreamEvent(FINISHED), bounded=False)

    assert results == [Published.ACCEPTED] * 3 + [Published.FULL]
    assert finished is Published.ACCEPTED
    # Once the reader caught up, there is room again.
    assert [await subscription.next(1) for _ in range(4)] == [
        StreamEvent(DATA, "0"),
        StreamEvent(DATA, "1"),
        StreamEvent(DATA, "2"),
        StreamEvent(FINISHED),
    ]
    assert await subscription.next(0.05) is None
    assert await hub.publish("task-c", StreamEvent(DATA, "3")) is Published.ACCEPTED
    await subscription.close()


async def test_next_waits_for_an_event_without_polling(hub: StreamHub) -> None:
    subscription = await hub.open("task-d", lifetime=60)

    async def later() -> None:
        await asyncio.sleep(0.2)
        await hub.publish("task-d", StreamEvent(DATA, "late"))

    publisher = asyncio.ensure_future(later())
    started = time.monotonic()
    event = await subscription.next(5)
    waited = time.monotonic() - started
    await publisher

    assert event == StreamEvent(DATA, "late")
    assert 0.15 < waited < 2
    started = time.monotonic()
    assert await subscription.next(0.3) is None
    assert 0.25 < time.monotonic() - started < 2
    await subscription.close()


async def test_a_stream_expires_after_its_lifetime(hub: StreamHub) -> None:
    subscription = await hub.open("task-e", lifetime=1)

    await asyncio.sleep(1.2)

    assert await hub.publish("task-e", StreamEvent(DATA, "x")) is Published.UNKNOWN
    await subscription.close()


def test_tokens_are_bound_to_their_task_and_expire() -> None:
    token = issue_token("task-1", 60)

    assert token_matches("task-1", token)
    assert not token_matches("task-2", token)
    assert not token_matches("task-1", issue_token("task-1", -1))
    expires, _, signature = token.partition(".")
    # Moving the expiry breaks the signature.
    assert not token_matches("task-1", f"{int(expires) + 3600}.{signature}")
    for garbage in ("", "abc", "123.", ".abc", "x.y"):
        assert not token_matches("task-1", garbage)
