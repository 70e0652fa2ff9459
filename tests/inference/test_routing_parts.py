"""The parts of federated routing one by one: the ranking, the circuit breaker, live states from
job lists and status pages, the never-waiting cache read, and sharing through Redis."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

from resource_server_async.catalog.adapter_config import AdapterConfig
from resource_server_async.clusters.base import BaseCluster, ClusterRow
from resource_server_async.clusters.jobs import ClusterJobs
from resource_server_async.clusters.live_state import LiveState, _page_state, job_state
from resource_server_async.endpoints.base import BaseEndpoint, EndpointRow
from resource_server_async.endpoints.circuit import Circuits
from resource_server_async.endpoints.routing_state import RoutingState
from resource_server_async.inference.routing import rank
from resource_server_async.refreshing_cache import RefreshingCache
from tests.waiting import wait_until_async


def endpoint(cluster: str) -> BaseEndpoint:
    row = EndpointRow(
        slug=f"{cluster}-vllm-m", cluster=cluster, framework="vllm", model="m", adapter_path=""
    )
    cluster_row = ClusterRow(cluster, "", ("vllm",), ("chat/completions",))
    return BaseEndpoint(row, AdapterConfig(), BaseCluster(cluster_row, AdapterConfig()))


A, B, C = endpoint("a"), endpoint("b"), endpoint("c")
READY, QUEUED = LiveState.READY, LiveState.QUEUED


def routing() -> RoutingState:
    return RoutingState(failures=2, cooldown=0.2)


def test_rank_by_state_then_in_flight_then_latency() -> None:
    state = routing()
    assert rank([A, B, C], [QUEUED, READY, LiveState.STARTING], state) == [B, C, A]

    state.load.begin(A.slug)
    assert rank([A, B, C], [READY, READY, READY], state) == [B, C, A]

    state.load.observe(B.slug, 0.5)
    state.load.observe(C.slug, 0.1)
    assert rank([A, B, C], [READY, READY, READY], state) == [C, B, A]
    state.load.end(A.slug)
    assert state.load.in_flight(A.slug) == 0


def test_in_flight_counts_other_workers() -> None:
    state = routing()
    state.load.others = {A.slug: 3}
    state.load.begin(B.slug)
    assert rank([A, B], [READY, READY], state) == [B, A]


def test_latency_is_a_moving_average() -> None:
    state = routing()
    state.load.observe(A.slug, 1.0)
    state.load.observe(A.slug, 0.0)
    assert state.load.latency(A.slug) == pytest.approx(0.8)


def test_an_open_circuit_is_ranked_last_whatever_its_state() -> None:
    state = routing()
    state.circuits.failed(A.slug)
    state.circuits.failed(A.slug)
    assert rank([A, B], [READY, QUEUED], state) == [B, A]


def test_a_session_stays_within_the_best_class() -> None:
    state = routing()
    choices = {rank([A, B, C], [READY, READY, QUEUED], state, f"s{n}")[0] for n in range(40)}
    assert choices == {A, B}
    for n in range(40):
        session = f"s{n}"
        first = rank([A, B, C], [READY, READY, QUEUED], state, session)[0]
        assert rank([A, B, C], [READY, READY, QUEUED], state, session)[0] is first
        # Losing the other endpoint of the class never moves a session that was not on it.
        other = B if first is A else A
        rest = [e for e in (A, B, C) if e is not other]
        assert rank(rest, [READY, QUEUED], state, session)[0] is first


async def test_circuit_opens_after_failures_in_a_row_and_a_probe_closes_it() -> None:
    circuits = Circuits(failures=3, cooldown=0.2)
    for _ in range(2):
        circuits.failed("x")
    circuits.succeeded("x")  # not in a row
    circuits.failed("x")
    circuits.failed("x")
    assert circuits.state("x") == "closed"
    circuits.failed("x")
    assert circuits.state("x") == "open"
    assert circuits.blocked("x")

    await wait_until_async(lambda: circuits.state("x") == "half_open")
    assert not circuits.blocked("x")
    circuits.attempting("x")  # the probe is out: nobody else is sent meanwhile
    assert circuits.blocked("x")
    circuits.failed("x")  # one failed probe opens it again
    assert circuits.state("x") == "open"

    await wait_until_async(lambda: circuits.state("x") == "half_open")
    circuits.attempting("x")
    circuits.succeeded("x")
    assert circuits.state("x") == "closed"
    assert circuits.closed == {"x"}


def test_job_lists_give_the_states() -> None:
    def jobs(running: list[dict[str, str]], queued: list[dict[str, str]], free: int) -> ClusterJobs:
        return ClusterJobs({"running": running, "queued": queued}, {"free_nodes": free})

    ready = {"Models": "m,other", "Framework": "vllm", "Model Status": "running"}
    loading = {"Models": "m", "Framework": "vllm", "Model Status": "starting"}
    waiting = {"Models": "M", "Framework": "vllm"}
    assert job_state(jobs([ready], [], 0), "m", "vllm") == LiveState.READY
    assert job_state(jobs([loading], [], 0), "m", "vllm") == LiveState.STARTING
    assert job_state(jobs([], [waiting], 0), "m", "vllm") == LiveState.QUEUED
    assert job_state(jobs([], [], 2), "m", "vllm") == LiveState.FREE_NODES
    assert job_state(jobs([], [], 0), "m", "vllm") is None
    assert job_state(jobs([ready], [], 0), "m", "sglang") is None


def test_status_page_words_give_the_states() -> None:
    assert _page_state("Live") == LiveState.READY
    assert _page_state("Starting") == LiveState.STARTING
    assert _page_state("Loading model") == LiveState.STARTING
    assert _page_state("Queued") == LiveState.QUEUED
    assert _page_state("Stopped") == LiveState.OFFLINE
    assert _page_state(None) == LiveState.OFFLINE
    assert _page_state("maintenance") == LiveState.REACHABLE
    assert [s.label for s in (LiveState.FREE_NODES, LiveState.READY)] == ["free_nodes", "ready"]


async def test_a_warm_value_is_answered_at_once_while_one_read_replaces_it() -> None:
    cache: RefreshingCache[str, int] = RefreshingCache(0.05, 10.0)
    release = asyncio.Event()
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await release.wait()
        return loads

    assert cache.peek_refreshing("k", load) is None  # cold: one read started, nobody waits
    release.set()
    await wait_until_async(lambda: cache.peek("k") == 1)
    release.clear()
    await wait_until_async(lambda: cache._entries["k"].loaded_at < time.monotonic() - 0.05)

    # Stale: the old value at once (a plain call, nothing awaited), and one read in flight.
    for _ in range(100):
        assert cache.peek_refreshing("k", load) == 1
    await wait_until_async(lambda: loads == 2)
    assert cache.peek_refreshing("k", load) == 1
    await asyncio.sleep(0)
    assert loads == 2
    release.set()
    await wait_until_async(lambda: cache.peek("k") == 2)


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("REDIS_URL is not set (the CI's second run sets it)")
    return url


async def test_workers_share_in_flight_counts_and_open_circuits_through_redis(
    redis_url: str,
) -> None:
    prefix = f"test-routing:{uuid.uuid4().hex}:"
    one, two = (
        RoutingState(failures=1, cooldown=5.0, redis_url=redis_url, prefix=prefix) for _ in range(2)
    )
    one.start_sharing()
    two.start_sharing()
    try:
        for _ in range(3):
            one.load.begin(A.slug)
        one.circuits.failed(B.slug)
        await one.share()
        await two.share()

        assert two.load.in_flight(A.slug) == 3
        assert two.circuits.state(B.slug) == "open"
        assert rank([B, A, C], [READY, READY, READY], two) == [C, A, B]

        for _ in range(3):
            one.load.end(A.slug)
        await one.share()
        await two.share()
        assert two.load.in_flight(A.slug) == 0
    finally:
        await one.close()
        await two.close()
