"""RefreshingCache: fresh hits, stale-while-refreshing, shared loads, failures not cached."""

from __future__ import annotations

import asyncio

import pytest

from resource_server_async.refreshing_cache import RefreshingCache
from tests.waiting import wait_until_async


class Loader:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = False

    async def __call__(self) -> int:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("status service down")
        return self.calls


async def test_fresh_values_are_not_loaded_again() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl=60, max_age=600)
    load = Loader()

    assert [await cache.get("k", load) for _ in range(3)] == [1, 1, 1]
    assert load.calls == 1


async def test_stale_value_is_answered_while_one_load_refreshes_it() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl=0.05, max_age=60)
    load = Loader(delay=0.05)
    assert await cache.get("k", load) == 1
    # Letting the TTL pass is the thing under test (the cache reads time.monotonic itself).
    await asyncio.sleep(0.06)

    stale = [await cache.get("k", load) for _ in range(3)]
    await wait_until_async(lambda: cache.peek("k") == 2)  # the background refresh landed

    assert stale == [1, 1, 1]
    assert load.calls == 2  # one background refresh for the three callers
    assert await cache.get("k", load) == 2


async def test_too_old_values_wait_for_a_load_shared_by_concurrent_callers() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl=0, max_age=0)
    load = Loader(delay=0.05)

    values = await asyncio.gather(*(cache.get("k", load) for _ in range(5)))

    assert values == [1] * 5
    assert load.calls == 1


async def test_a_failed_load_is_raised_and_not_cached() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl=60, max_age=600)
    load = Loader()
    load.fail = True

    with pytest.raises(RuntimeError, match="status service down"):
        await cache.get("k", load)
    load.fail = False

    assert await cache.get("k", load) == 2


async def test_a_failed_refresh_keeps_the_stale_value() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl=0.01, max_age=60)
    load = Loader()
    assert await cache.get("k", load) == 1
    await asyncio.sleep(0.02)  # the TTL passing is the thing under test
    load.fail = True

    assert await cache.get("k", load) == 1
    await wait_until_async(lambda: load.calls == 2)  # the refresh was tried
    await asyncio.sleep(0)  # and its failure handled

    assert await cache.get("k", load) == 1
    assert cache.peek("k") == 1


async def test_a_caller_giving_up_does_not_cancel_the_shared_load() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl=60, max_age=600)
    load = Loader(delay=0.1)

    impatient = asyncio.ensure_future(cache.get("k", load))
    patient = asyncio.ensure_future(cache.get("k", load))
    await wait_until_async(lambda: load.calls == 1)  # the shared load is under way
    impatient.cancel()

    assert await patient == 1
    assert load.calls == 1


async def test_a_failure_is_remembered_for_failure_ttl_without_a_value() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl=60, max_age=600, failure_ttl=60)
    load = Loader()
    load.fail = True

    for _ in range(3):
        with pytest.raises(RuntimeError, match="status service down"):
            await cache.get("k", load)

    assert load.calls == 1  # the dead source was asked once
    cache.clear()
    load.fail = False
    assert await cache.get("k", load) == 2


async def test_a_failed_refresh_is_not_retried_by_every_caller_within_failure_ttl(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(ttl=0, max_age=600, failure_ttl=60)
    load = Loader()
    assert await cache.get("k", load) == 1
    load.fail = True

    assert await cache.get("k", load) == 1  # stale; starts one refresh, which fails
    await wait_until_async(lambda: "refresh of 'k' failed" in caplog.text)
    stale = []
    for _ in range(5):
        stale.append(await cache.get("k", load))
        await asyncio.sleep(0)  # one step for a load it may have started: that step calls load

    assert "refresh of 'k' failed" in caplog.text
    assert stale == [1] * 5  # still served while the source is down
    assert load.calls == 2  # one failed refresh, then none for failure_ttl
