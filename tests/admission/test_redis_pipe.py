"""Admission's pipelined Redis connection against a real Redis (and a server that never answers)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from resource_server_async.admission.redis_pipe import RedisUnavailable, Script, ScriptPipe

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="REDIS_URL is not set (the CI's second run sets it)"
)

INCREMENT = Script("return {KEYS[1], redis.call('INCRBY', KEYS[1], ARGV[1])}")
FAILING = Script("return redis.error_reply('ERR made to fail')")


@pytest.fixture
async def pipe() -> AsyncIterator[ScriptPipe]:
    built = ScriptPipe(os.environ["REDIS_URL"], timeout=2, max_pending=10_000)
    yield built
    await built.close()


@pytest.fixture
async def plain() -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield client
    await client.aclose()


async def test_concurrent_calls_each_get_their_own_reply(
    pipe: ScriptPipe, plain: redis.Redis
) -> None:
    keys = [f"igw:test:pipe:{i}" for i in range(500)]
    await plain.delete(*keys)
    replies = await asyncio.gather(*(pipe.call(INCREMENT, [k], [i]) for i, k in enumerate(keys)))
    assert replies == [[k.encode(), i] for i, k in enumerate(keys)]
    # The database of REDIS_URL (SELECT) is the one written.
    assert int(await plain.get(keys[7]) or 0) == 7
    await plain.delete(*keys)


async def test_a_script_redis_has_not_seen_is_sent_whole(
    pipe: ScriptPipe, plain: redis.Redis
) -> None:
    fresh = Script(f"return {time.time_ns()}")  # a text no Redis has seen
    first, second = await asyncio.gather(pipe.call(fresh, [], []), pipe.call(fresh, [], []))
    assert first == second
    assert (await plain.script_exists(fresh.sha)) == [True]  # EVAL left it in the cache


async def test_calls_keep_their_order_when_redis_has_lost_its_scripts(
    plain: redis.Redis,
) -> None:
    """A write and a read of one key in one flush, the write's script unknown to Redis (as
    after a restart or SCRIPT FLUSH), the read's known: the read sees the write (a release
    whose script Redis lacked was run after the acquire written behind it)."""
    key = f"igw:test:pipe:order:{time.time_ns()}"
    write = Script(f"-- {key}\nreturn redis.call('SET', KEYS[1], ARGV[1])")
    read = Script(f"-- {key}\nreturn redis.call('GET', KEYS[1])")
    await plain.script_flush()
    await plain.script_load(read.text)
    pipe = ScriptPipe(os.environ["REDIS_URL"], timeout=2, max_pending=10)
    try:
        written = pipe.call(write, [key], ["written"])
        seen = await pipe.call(read, [key], [])
        await written
    finally:
        await pipe.close()
        await plain.delete(key)

    assert seen == b"written"


async def test_a_script_error_fails_that_call_only(pipe: ScriptPipe) -> None:
    failing = pipe.call(FAILING, [], [])
    fine = pipe.call(INCREMENT, ["igw:test:pipe:fine"], [1])
    with pytest.raises(RedisUnavailable, match="made to fail"):
        await failing
    assert (await fine)[0] == b"igw:test:pipe:fine"


async def test_redis_down_fails_at_once() -> None:
    down = ScriptPipe("redis://127.0.0.1:1/0", timeout=2, max_pending=10)
    started = time.monotonic()
    with pytest.raises(RedisUnavailable, match="cannot connect"):
        await down.call(INCREMENT, ["k"], [1])
    assert time.monotonic() - started < 1.5
    await down.close()


async def test_a_server_that_never_answers_times_out_and_pending_calls_are_bounded() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stuck = ScriptPipe(f"redis://127.0.0.1:{port}/0", timeout=0.3, max_pending=3)
    calls = [stuck.call(INCREMENT, ["k"], [1]) for _ in range(5)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    messages = [str(r) for r in results]
    # The bound: three wait, the fourth and fifth fail at once; the three fail at the timeout.
    assert sum("already wait" in m for m in messages) == 2
    assert sum("did not answer" in m for m in messages) == 3
    assert all(isinstance(r, RedisUnavailable) for r in results)
    await stuck.close()
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()
