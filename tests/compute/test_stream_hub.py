"""The stream hub (in-process, and on Redis when REDIS_URL is set) and the task tokens."""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
import weakref
from collections.abc import AsyncIterator

import pytest
from django.utils.crypto import salted_hmac
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async.compute.functions import INFERENCE
from resource_server_async.errors import GatewayError
from resource_server_async.runtime import Runtime, installed
from resource_server_async.streaming import (
    _TOKEN_SALT,
    DATA,
    DONE,
    FINISHED,
    VERIFIED_TOKENS,
    Backlog,
    HubBusy,
    LocalStreamHub,
    Published,
    RedisStreamHub,
    StreamEvent,
    StreamHub,
    _signed,
    issue_token,
    token_matches,
)
from tests.compute.conftest import chat_request, make_endpoint

# Three messages, or 2,500 bytes of text, per stream.
BACKLOG = Backlog(messages=3, bytes=2500)


def _redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("REDIS_URL is not set (the CI's second run sets it)")
    return url


def _redis_hub(readers: int = 50) -> RedisStreamHub:
    return RedisStreamHub(_redis_url(), f"test-{uuid.uuid4().hex}:", BACKLOG, readers=readers)


async def _redis_command(*command: object) -> object:
    """One command on a connection of the test's own (the hub's are its own business)."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(_redis_url())
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def hub(request: pytest.FixtureRequest) -> AsyncIterator[StreamHub]:
    if request.param == "memory":
        yield LocalStreamHub(BACKLOG)
        return
    redis_hub = _redis_hub()
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
        # The delay is the thing under test: next() must wait through it (bounds are generous).
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

    # The lifetime passing is the thing under test, and it is kept by the hub (Redis's own
    # expiry): no clock to fake. 0.8 s past the 1 s lifetime leaves room for a loaded machine.
    await asyncio.sleep(1.8)

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
    # The HMAC Django's salted_hmac makes, which tokens issued before were signed with.
    assert (
        signature == salted_hmac(_TOKEN_SALT, f"task-1.{expires}", algorithm="sha256").hexdigest()
    )
    # "\xb2" ('²') is a digit to str.isdigit() but not to int().
    for garbage in ("", "abc", "123.", ".abc", "x.y", "\xb2.x", "\xb2" + token[1:], "١٢.x"):
        assert not token_matches("task-1", garbage)


def test_a_remembered_token_still_expires_and_binds_its_task(settings: SettingsWrapper) -> None:
    token = issue_token("task-1", 1)
    assert token_matches("task-1", token)  # its signature is remembered from here on
    forged = token[:-1] + ("0" if token[-1] != "0" else "1")

    assert not token_matches("task-1", forged)
    assert not token_matches("task-2", token)
    # Another SECRET_KEY: the remembered answer is not taken for it.
    settings.SECRET_KEY = "another-" + settings.SECRET_KEY
    assert not token_matches("task-1", token)
    settings.SECRET_KEY = settings.SECRET_KEY.removeprefix("another-")
    # The expiry is read every time: 2 s past a 1 s lifetime, the remembered one is refused.
    time.sleep(2.0)
    assert not token_matches("task-1", token)


def test_tokens_of_odd_shapes_are_refused_without_being_remembered() -> None:
    long_id = "t" * 5000
    assert token_matches(long_id, issue_token(long_id, 60))  # checked, not remembered
    expires, _, signature = issue_token("task-1", 60).partition(".")
    before = _signed.cache_info().currsize

    for token in (f"{'9' * 5000}.{signature}", f"{expires}.{signature}00", f"{expires}.ab"):
        assert not token_matches("task-1", token)

    # Only well-shaped tokens of short ids take a place in the table.
    assert _signed.cache_info().currsize == before
    assert _signed.cache_info().maxsize == VERIFIED_TOKENS


async def _held_bytes(hub: StreamHub, subscription: object) -> int:
    """Bytes of text the hub holds for the stream's reader: what the backlog bound is about."""
    if isinstance(hub, RedisStreamHub):
        key, _ = hub.keys(subscription.task_id)  # type: ignore[attr-defined]
        published, taken = await _redis_command("HMGET", key, "p", "t")  # type: ignore[misc]
        return int(published) - int(taken)
    return int(subscription.held_bytes)  # type: ignore[attr-defined]


async def test_backlog_is_bounded_in_bytes(hub: StreamHub) -> None:
    subscription = await hub.open("task-f", lifetime=60)
    kilobyte = "x" * 1000

    results = [await hub.publish("task-f", StreamEvent(DATA, kilobyte)) for _ in range(3)]
    held = await _held_bytes(hub, subscription)

    # Two posts fit in 2,500 bytes; the third would make 3,000.
    assert results == [Published.ACCEPTED, Published.ACCEPTED, Published.FULL]
    assert held == 2000
    # Reading frees the bytes: the reader takes both, and the next post is accepted.
    assert [await subscription.next(1) for _ in range(2)] == [StreamEvent(DATA, kilobyte)] * 2
    assert await subscription.next(0.05) is None
    assert await _held_bytes(hub, subscription) == 0
    assert await hub.publish("task-f", StreamEvent(DATA, kilobyte)) is Published.ACCEPTED
    await subscription.close()


async def test_the_reading_process_holds_no_more_than_the_byte_bound() -> None:
    bound = 64 * 1024
    hub = RedisStreamHub(_redis_url(), f"test-{uuid.uuid4().hex}:", Backlog(1000, bound), readers=5)
    try:
        subscription = await hub.open("task-m", lifetime=60)
        post = "p" * 10_000
        # 500 kB offered to a reader that reads nothing; the message bound alone would take it.
        results = [await hub.publish("task-m", StreamEvent(DATA, post)) for _ in range(50)]
        key, channel = hub.keys("task-m")
        used = int(await _redis_command("MEMORY", "USAGE", key))  # type: ignore[call-overload]
        held = sum(size for _, size in hub._inboxes[channel].events)

        assert results.count(Published.ACCEPTED) == bound // len(post)
        # The events wait in the reader's process; Redis keeps the stream's counts alone.
        assert held == len(post) * (bound // len(post))
        assert used < 1024
        await subscription.close()
    finally:
        await hub.close()


async def test_a_post_larger_than_the_byte_bound_is_taken_when_nothing_waits(
    hub: StreamHub,
) -> None:
    subscription = await hub.open("task-g", lifetime=60)
    large = "y" * 4000

    first = await hub.publish("task-g", StreamEvent(DATA, large))
    second = await hub.publish("task-g", StreamEvent(DATA, "z"))

    # The side channel's body limit bounds one post; a stream must not wedge on it.
    assert (first, second) == (Published.ACCEPTED, Published.FULL)
    assert await subscription.next(1) == StreamEvent(DATA, large)
    await subscription.close()


async def test_a_closed_local_stream_is_released_at_once() -> None:
    hub = LocalStreamHub(BACKLOG)
    subscription = await hub.open("task-h", lifetime=3600)
    await hub.publish("task-h", StreamEvent(DATA, "held"))
    released = weakref.ref(subscription)

    await subscription.close()
    del subscription
    gc.collect()

    # Not kept alive for an hour by its expiry timer.
    assert released() is None
    assert hub.streams == {}


async def _subscribers(hub: RedisStreamHub, *task_ids: str) -> list[int]:
    """How many connections are subscribed to each stream's channel."""
    channels = [hub.keys(task_id)[1] for task_id in task_ids]
    counts = await _redis_command("PUBSUB", "NUMSUB", *channels)
    return list(counts[1::2])  # type: ignore[index]


async def test_redis_readers_are_bounded_per_process() -> None:
    hub = _redis_hub(readers=2)
    try:
        first = await hub.open("task-i", lifetime=60)
        second = await hub.open("task-j", lifetime=60)
        with pytest.raises(HubBusy):
            await hub.open("task-k", lifetime=60)
        # Both streams wait at once, on the process's one subscribing connection.
        subscriber = hub.subscriber
        waits = [asyncio.ensure_future(s.next(2)) for s in (first, second)]
        for name in ("task-i", "task-j"):
            assert await hub.publish(name, StreamEvent(DATA, name)) is Published.ACCEPTED
        assert [event.text for event in await asyncio.gather(*waits) if event] == [
            "task-i",
            "task-j",
        ]
        assert hub.subscriber is subscriber
        assert await _subscribers(hub, "task-i", "task-j") == [1, 1]
        # A closed stream makes room for another, and leaves its channel.
        await first.close()
        await first.close()  # closing twice frees one place, not two
        third = await hub.open("task-k", lifetime=60)
        with pytest.raises(HubBusy):
            await hub.open("task-l", lifetime=60)
        # A stream dropped without close (its request cancelled before the relay began) gives
        # its place back when it is collected.
        del first
        await second.close()
        del second
        gc.collect()
        assert hub.open_streams == 1
        del third
        gc.collect()
        assert hub.open_streams == 0
        assert await _subscribers(hub, "task-i", "task-j", "task-k") == [0, 0, 0]
        assert hub.subscriber is subscriber
    finally:
        await hub.close()


async def test_a_stream_past_the_redis_readers_answers_503(settings: SettingsWrapper) -> None:
    settings.REDIS_URL = _redis_url()
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"},
    }
    settings.STREAMING_REDIS_READERS = 1
    settings.COMPUTE_EXECUTOR = "local"
    settings.INTERNAL_STREAMING_SECRET = "test-streaming-secret"
    endpoint = make_endpoint(str(uuid.uuid4()), INFERENCE.local_uuid, api_port=9)
    async with installed(Runtime.from_settings()) as runtime:
        held = await runtime.hub.open("the-one-reader", lifetime=60)

        with pytest.raises(GatewayError) as caught:
            await endpoint.open_stream(chat_request(stream=True))

        # Refused before a task is sent, with the hint to come back.
        assert (caught.value.status, caught.value.code) == (503, "stream_hub_busy")
        assert caught.value.headers["Retry-After"] == "1"
        await held.close()


async def test_a_wait_cancelled_midway_leaves_the_stream_readable() -> None:
    hub = _redis_hub(readers=2)
    try:
        subscription = await hub.open("task-n", lifetime=60)
        waiting = asyncio.ensure_future(subscription.next(5))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

        assert await hub.publish("task-n", StreamEvent(DATA, "after")) is Published.ACCEPTED
        assert await subscription.next(2) == StreamEvent(DATA, "after")
        await subscription.close()
    finally:
        await hub.close()


def _other_process(hub: RedisStreamHub) -> RedisStreamHub:
    """A hub on the same streams, as another worker process has (its own connections)."""
    return RedisStreamHub(_redis_url(), hub._prefix, hub.backlog, readers=hub.readers)


async def test_posts_landing_on_another_process_reach_the_reader_and_its_backlog_bound() -> None:
    reading = RedisStreamHub(_redis_url(), f"test-{uuid.uuid4().hex}:", Backlog(4, 10**6), 5)
    posting = _other_process(reading)
    try:
        subscription = await reading.open("task-r", lifetime=60)
        results = [await posting.publish("task-r", StreamEvent(DATA, str(i))) for i in range(5)]
        assert results == [Published.ACCEPTED] * 4 + [Published.FULL]

        # What the reader takes is told to Redis on its own once half the backlog is taken.
        assert await subscription.next(1) == StreamEvent(DATA, "0")
        await asyncio.sleep(0.05)
        assert await posting.publish("task-r", StreamEvent(DATA, "x")) is Published.FULL
        assert await subscription.next(1) == StreamEvent(DATA, "1")
        await asyncio.sleep(0.05)
        results = [await posting.publish("task-r", StreamEvent(DATA, str(i))) for i in (4, 5, 6)]
        assert results == [Published.ACCEPTED] * 2 + [Published.FULL]
        taken = [await subscription.next(1) for _ in range(4)]
        assert [event.text for event in taken if event] == ["2", "3", "4", "5"]
        await subscription.close()
        assert await posting.publish("task-r", StreamEvent(DATA, "y")) is Published.UNKNOWN
    finally:
        await posting.close()
        await reading.close()


async def test_the_readers_takings_ride_on_its_own_process_publish() -> None:
    hub = RedisStreamHub(_redis_url(), f"test-{uuid.uuid4().hex}:", Backlog(4, 10**6), 5)
    try:
        subscription = await hub.open("task-s", lifetime=60)
        for i in range(4):
            assert await hub.publish("task-s", StreamEvent(DATA, str(i))) is Published.ACCEPTED
        assert await subscription.next(1) == StreamEvent(DATA, "0")
        key, _ = hub.keys("task-s")
        assert await _redis_command("HGET", key, "m") == b"0"  # one taken: not told on its own

        # The next publish tells it first, so the one taken makes room.
        assert await hub.publish("task-s", StreamEvent(DATA, "4")) is Published.ACCEPTED
        assert await _redis_command("HMGET", key, "n", "m") == [b"5", b"1"]
        await subscription.close()
    finally:
        await hub.close()


async def test_a_lost_subscribing_connection_fails_its_streams_and_the_next_subscribes_again() -> (
    None
):
    from resource_server_async.redis_pubsub import RedisReadFailed

    hub = _redis_hub(readers=5)
    posting = _other_process(hub)
    try:
        subscription = await hub.open("task-t", lifetime=60)
        assert await hub.publish("task-t", StreamEvent(DATA, "before")) is Published.ACCEPTED
        assert await subscription.next(1) == StreamEvent(DATA, "before")
        assert hub.subscriber is not None and hub.subscriber._transport is not None
        host, port = hub.subscriber._transport.get_extra_info("sockname")[:2]
        waiting = asyncio.ensure_future(subscription.next(5))
        await asyncio.sleep(0.05)

        # Redis drops the connection (as on a restart): its messages from then on are lost.
        await _redis_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")

        with pytest.raises(RedisReadFailed, match="lost"):
            await waiting
        # Nobody listens on its channel any more: POSTs are refused, so the function stops.
        assert await posting.publish("task-t", StreamEvent(DATA, "x")) is Published.UNKNOWN
        await subscription.close()
        later = await hub.open("task-u", lifetime=60)
        assert await posting.publish("task-u", StreamEvent(DATA, "y")) is Published.ACCEPTED
        assert await later.next(2) == StreamEvent(DATA, "y")
        await later.close()
    finally:
        await posting.close()
        await hub.close()


async def test_calls_waiting_on_the_publishing_connection_are_bounded() -> None:
    from resource_server_async.admission.redis_pipe import RedisUnavailable

    hub = _redis_hub(readers=1)  # at most 4 calls waiting
    try:
        subscription = await hub.open("task-p", lifetime=60)
        outcomes = await asyncio.gather(
            *(hub.publish("task-p", StreamEvent(DATA, "x")) for _ in range(10)),
            return_exceptions=True,
        )

        refused = [o for o in outcomes if isinstance(o, RedisUnavailable)]
        assert len(refused) == 6
        assert outcomes.count(Published.ACCEPTED) + outcomes.count(Published.FULL) == 4
        await subscription.close()
    finally:
        await hub.close()


async def test_chunk_texts_are_not_remembered_by_the_publishing_connection() -> None:
    from resource_server_async.admission.resp import packed_values

    hub = _redis_hub()
    try:
        subscription = await hub.open("task-q", lifetime=60)
        await hub.publish("task-q", StreamEvent(DATA, "first"))
        remembered = packed_values()
        for index in range(50):
            await hub.publish("task-q", StreamEvent(DATA, f"chunk {index}"))
            assert await subscription.next(1) is not None

        # The keys and bounds repeat and are remembered once; no chunk's text is.
        assert packed_values() == remembered
        await subscription.close()
    finally:
        await hub.close()
