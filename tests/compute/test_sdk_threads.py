"""The executor's blocking SDK calls in the pool: an endpoint's slot stays taken until its
thread is done, even when the wait for it gave up; a call queued behind a full pool that is
given up never runs."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from resource_server_async.compute.base import ComputeServiceError
from resource_server_async.compute.globus import (
    ComputeSession,
    Credentials,
    EndpointSlots,
    ExecutorSettings,
)

ENDPOINT = "5b0b9c83-3c55-4a0e-9c55-6f1d5c2f3b11"


@pytest.fixture
def pool() -> ThreadPoolExecutor:
    threads = ThreadPoolExecutor(2)
    yield threads
    threads.shutdown(wait=True)


def session(pool: ThreadPoolExecutor, timeout: float) -> ComputeSession:
    config = ExecutorSettings("id", "secret", service_timeout=timeout, threads_per_endpoint=1)
    return ComputeSession(Credentials("id", "secret"), pool, EndpointSlots(1), config)


async def test_a_given_up_call_holds_its_endpoint_slot_until_its_thread_is_done(
    pool: ThreadPoolExecutor,
) -> None:
    calls = session(pool, timeout=0.2)
    release = threading.Event()
    started: list[str] = []

    def hangs() -> str:
        started.append("hung")
        release.wait(10)
        return "late"

    def quick() -> str:
        started.append("quick")
        return "quick"

    with pytest.raises(ComputeServiceError, match="did not answer"):
        await calls._call("hang", hangs, endpoint=ENDPOINT)
    second = asyncio.ensure_future(calls._call("quick", quick, endpoint=ENDPOINT))
    await asyncio.sleep(0.1)
    # The first call's thread still runs: the endpoint's one slot is still taken.
    assert started == ["hung"] and not second.done()
    release.set()
    assert await second == "quick"
    assert started == ["hung", "quick"]


async def test_results_and_errors_come_back_from_the_thread(pool: ThreadPoolExecutor) -> None:
    calls = session(pool, timeout=5.0)

    def fails() -> None:
        raise ValueError("bad answer")

    assert await calls._call("sum", sum, [1, 2, 3]) == 6
    assert await calls._call("sum", sum, [4], endpoint=ENDPOINT) == 4
    with pytest.raises(ComputeServiceError, match="bad answer"):
        await calls._call("fail", fails, endpoint=ENDPOINT)
    # The failure gave its slot back.
    assert await calls._call("sum", sum, [5], endpoint=ENDPOINT) == 5


async def test_a_given_up_call_that_never_started_never_runs() -> None:
    single = ThreadPoolExecutor(1)
    calls = session(single, timeout=0.2)
    release = threading.Event()
    ran: list[str] = []
    try:
        # Without an endpoint: no slot, the pool's one thread is the limit.
        blocker = asyncio.ensure_future(calls._call("block", release.wait, 10))
        await asyncio.sleep(0.05)
        with pytest.raises(ComputeServiceError):
            await calls._call("queued", ran.append, "queued")
        release.set()
        with pytest.raises(ComputeServiceError):  # its wait gave up too, first
            await blocker
        await asyncio.to_thread(single.submit(lambda: None).result)  # the pool has drained
        assert ran == []
    finally:
        single.shutdown(wait=True)
