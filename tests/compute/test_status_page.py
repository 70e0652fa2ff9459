"""A cluster's status page after its cache expired: the last reading answers at once while one
fetch, however slow, replaces it (issue 9, item 16)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web
from pytest_django.fixtures import Settings

from resource_server_async.clusters.base import ClusterRow
from resource_server_async.clusters.metis import MetisCluster, MetisClusterConfig
from resource_server_async.clusters.status_page import StatusPage
from resource_server_async.runtime import Runtime
from tests.waiting import wait_until_async

CACHE_SECONDS = 0.05
# Far longer than any answer from the cache may take; the held fetch outlasts it.
PATIENCE = 10.0


@dataclass
class SlowStatusServer:
    """A real status page whose answers after the first wait until the test releases them."""

    url: str = ""
    status: str = "Live"
    fetches: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.fetches > 1:
            await self.release.wait()
        document = {"k": {"status": self.status, "model": "live-model"}}
        return web.Response(body=orjson.dumps(document), content_type="application/json")


@pytest.fixture
async def slow_page(runtime: Runtime) -> AsyncIterator[SlowStatusServer]:
    # The status page is fetched through the runtime's pooled sessions.
    server = SlowStatusServer()
    app = web.Application()
    app.router.add_get("/status", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/status"
    yield server
    server.release.set()
    await runner.cleanup()


async def _until(condition: Callable[[], bool], what: str) -> None:
    await wait_until_async(condition, PATIENCE)


async def _expire(page_read_at: float) -> None:
    await _until(lambda: time.monotonic() > page_read_at + CACHE_SECONDS, "the cache to expire")


async def test_an_expired_reading_answers_at_once_while_one_slow_fetch_runs(
    slow_page: SlowStatusServer,
) -> None:
    page = StatusPage("metis", slow_page.url, timeout=60, cache_seconds=CACHE_SECONDS)
    assert await page.state_of("live-model") == "Live"
    await _expire(time.monotonic())
    slow_page.status = "Stopped"

    # The second fetch is held by the server: only the stale reading can answer these.
    states = await asyncio.wait_for(
        asyncio.gather(*(page.state_of("live-model") for _ in range(20))), PATIENCE
    )
    await _until(lambda: slow_page.fetches == 2, "the refresh to reach the page")

    assert states == ["Live"] * 20
    assert slow_page.fetches == 2  # one refresh for the twenty callers

    slow_page.release.set()
    await _wait_for_state(page, "Stopped")


async def _wait_for_state(page: StatusPage, state: str) -> None:
    # Each call may start at most one refresh, so this does not flood the page.
    deadline = time.monotonic() + PATIENCE
    while await page.state_of("live-model") != state:
        assert time.monotonic() < deadline, f"waited {PATIENCE} s for {state!r}"
        await asyncio.sleep(0.01)


async def test_jobs_answer_at_once_from_the_expired_reading(
    slow_page: SlowStatusServer, settings: Settings
) -> None:
    settings.MODEL_STATUS_CACHE_SECONDS = CACHE_SECONDS
    row = ClusterRow(
        name="metis",
        adapter_path="resource_server_async.clusters.metis.MetisCluster",
        frameworks=("api",),
        openai_endpoints=("chat/completions",),
        config={"status_url": slow_page.url},
    )
    cluster = MetisCluster(row, MetisClusterConfig(status_url=slow_page.url))
    page = cluster.status_page
    assert page is not None
    first = await cluster.jobs()
    await _expire(time.monotonic())
    slow_page.status = "Stopped"

    again = await asyncio.wait_for(cluster.jobs(), PATIENCE)
    live = await asyncio.wait_for(page.state_of("live-model"), PATIENCE)

    assert again == first
    assert [job["Models"] for job in again.lists["running"]] == ["live-model"]
    assert live == "Live"
    await _until(lambda: slow_page.fetches == 2, "the refresh to reach the page")


async def test_past_the_stale_limit_callers_wait_for_the_page(
    slow_page: SlowStatusServer,
) -> None:
    page = StatusPage(
        "metis", slow_page.url, timeout=60, cache_seconds=CACHE_SECONDS, stale_seconds=0
    )
    assert await page.state_of("live-model") == "Live"
    await _expire(time.monotonic())
    slow_page.status = "Stopped"

    waiting = asyncio.ensure_future(page.state_of("live-model"))
    await _until(lambda: slow_page.fetches == 2, "the refresh to reach the page")
    assert not waiting.done()
    slow_page.release.set()

    assert await asyncio.wait_for(waiting, PATIENCE) == "Stopped"
