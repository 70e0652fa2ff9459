"""Limits and allocations decided in one Redis script (admission/joint.py): all or nothing,
whichever refuses, and the same tickets as two separate calls would leave."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest

from resource_server_async import admission, runtime
from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.admission.allocation_books import AllocationBooks
from resource_server_async.admission.allocation_ledger import RedisLedger
from resource_server_async.admission.allocations import AllocationRefusal
from resource_server_async.admission.joint import JointTicket, joint_admission
from resource_server_async.admission.limits import LimitRefusal
from resource_server_async.admission.redis_limiter import RedisLimiter
from resource_server_async.admission.redis_scripts import RedisScripts
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.projects import AllocationRule, build_projects
from resource_server_async.catalog.snapshot import build_snapshot, catalog
from resource_server_async.clusters.base import ClusterRow
from resource_server_async.endpoints.base import BaseEndpoint, EndpointRow
from resource_server_async.inference.pipeline import ParsedRequest
from resource_server_async.runtime import Runtime
from tests.admission.parsed import chat_request
from tests.config.helpers import DIRECT_CLUSTER, DIRECT_ENDPOINT

PRINCIPAL = Principal(id="api_key:1", username="k", kind="api_key")
BUDGET = 6  # tokens per month


@dataclass
class Setup:
    endpoint: BaseEndpoint
    limiter: RedisLimiter
    books: AllocationBooks
    calls: RedisScripts
    prefix: str  # LIMITS_REDIS_PREFIX of this test


@pytest.fixture
async def setup(settings: object) -> AsyncIterator[Setup]:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("REDIS_URL is not set (the CI's second run sets it)")
    run = uuid.uuid4().hex
    prefix = f"test-joint:{run}:"
    settings.LIMITS_REDIS_PREFIX = prefix  # type: ignore[attr-defined]
    calls = RedisScripts(url, timeout=1, pending=100)
    limiter = RedisLimiter(calls, window=60, lease=60)
    books = AllocationBooks(RedisLedger(calls), prefix=f"test-joint-alloc:{run}:", interval=60)
    built = Runtime.from_settings()
    built._limiter, built._allocations = limiter, books
    previous = catalog.snapshot
    rule = AllocationRule(1, "team-month", "team", "month", 1, BUDGET, None)
    cluster = ClusterRow("c1", DIRECT_CLUSTER, ("vllm",), ("chat/completions",))
    row = EndpointRow(
        "c1-vllm-m",
        "c1",
        "vllm",
        "m",
        DIRECT_ENDPOINT,
        config={"api_url": "http://127.0.0.1:9"},
        rpm_user=2,
    )
    member = {"name": "team", "weight": 1, "order": 1, "globus_group": "", "api_key_ids": [1]}
    projects = build_projects([{**member, "default_for": []}], (rule,))
    catalog.install(build_snapshot([cluster], [row], projects=projects))
    async with runtime.installed(built):
        yield Setup(catalog.snapshot.endpoints["c1-vllm-m"], limiter, books, calls, prefix)
    catalog.install(previous)
    await calls.close()


def request(max_tokens: int) -> ParsedRequest:
    outcome = RequestOutcome("r", 0.0, 0.0, "cluster", "chat/completions", status=200)
    return chat_request(PRINCIPAL, outcome, max_tokens)


async def requests_left(setup: Setup) -> float:
    """The user's request bucket (rpm_user = 2) as Redis holds it."""
    level = await setup.calls.redis.hget(f"{setup.prefix}c1-vllm-m:u:{PRINCIPAL.id}:r", "l")
    return float(level) if level is not None else 2.0  # a missing bucket is full


async def tokens_spent(setup: Setup) -> int:
    rule = catalog.snapshot.projects.allocations["team"][0]
    account = setup.books.account(rule, time.time())
    spent = (await setup.books.ledger.read([account.key]))[0]
    return 0 if spent is None else spent.tokens


async def test_both_apply_on_redis_so_one_script_decides_both(setup: Setup) -> None:
    assert joint_admission(setup.limiter, setup.books.ledger) is not None
    admitted = request(max_tokens=2)
    await admission.admit(admitted, setup.endpoint)
    assert admitted.admission is not None
    # One ticket holds both (released in one call): the limits' and the allocation's charges.
    [ticket] = admitted.admission.tickets
    assert isinstance(ticket, JointTicket)
    assert [b.kind for b in ticket.buckets] == ["requests"] and ticket.accounts
    assert admitted.admission.decision is not None  # the headers' figures
    assert await tokens_spent(setup) == 3
    assert await requests_left(setup) == pytest.approx(1, abs=0.01)


async def test_an_allocation_refusal_gives_the_limits_back(setup: Setup) -> None:
    await admission.admit(request(max_tokens=5), setup.endpoint)  # 6 of 6 tokens reserved
    assert await requests_left(setup) == pytest.approx(1, abs=0.01)
    refused = request(max_tokens=1)
    with pytest.raises(AllocationRefusal):
        await admission.admit(refused, setup.endpoint)
    assert refused.admission is not None and refused.admission.tickets == []
    assert refused.admission.decision is not None  # its headers still say what is left
    assert await requests_left(setup) == pytest.approx(1, abs=0.01)  # not charged
    assert await tokens_spent(setup) == BUDGET


async def test_a_limit_refusal_charges_no_allocation(setup: Setup) -> None:
    await admission.admit(request(max_tokens=0), setup.endpoint)
    await admission.admit(request(max_tokens=0), setup.endpoint)  # rpm_user = 2: both pass
    assert await tokens_spent(setup) == 2
    refused = request(max_tokens=0)
    with pytest.raises(LimitRefusal) as raised:
        await admission.admit(refused, setup.endpoint)
    assert not isinstance(raised.value, AllocationRefusal)
    assert refused.admission is not None and refused.admission.tickets == []
    assert await tokens_spent(setup) == 2


async def test_the_joint_ticket_sets_both_to_the_tokens_used_in_one_release(setup: Setup) -> None:
    admitted = request(max_tokens=2)
    await admission.admit(admitted, setup.endpoint)
    assert await tokens_spent(setup) == 3  # reserved: one of prompt, two of completion
    assert admitted.admission is not None and admitted.outcome is not None
    admitted.outcome.total_tokens = 1
    await admitted.admission.release(admitted.outcome)
    assert admitted.admission.tickets == []
    # A call on the pipe after the release: its answer comes after the release's bundle ran.
    await setup.calls.run(setup.calls.register("return 0"), [], [])
    assert await tokens_spent(setup) == 1
    assert await requests_left(setup) == pytest.approx(1, abs=0.01)  # a request stays a request


async def test_the_prepared_release_gives_tokens_back_and_frees_the_slot(setup: Setup) -> None:
    cluster = ClusterRow("c1", DIRECT_CLUSTER, ("vllm",), ("chat/completions",))
    row = replace(setup.endpoint.row, tpm_user=100, max_concurrent_user=1)
    catalog.install(build_snapshot([cluster], [row], projects=catalog.snapshot.projects))
    endpoint = catalog.snapshot.endpoints["c1-vllm-m"]
    first = request(max_tokens=5)  # 6 tokens reserved: the whole month's budget
    await admission.admit(first, endpoint)
    with pytest.raises(LimitRefusal, match="in flight"):
        await admission.admit(request(max_tokens=0), endpoint)
    assert first.admission is not None and first.outcome is not None
    first.outcome.total_tokens = 2
    await first.admission.release(first.outcome)
    await setup.calls.run(setup.calls.register("return 0"), [], [])  # after the release's bundle
    assert await tokens_spent(setup) == 2
    level = await setup.calls.redis.hget(f"{setup.prefix}c1-vllm-m:u:{PRINCIPAL.id}:t", "l")
    assert float(level) == pytest.approx(98, abs=0.5)  # 100 - 6 reserved + 4 given back
    await admission.admit(request(max_tokens=0), endpoint)  # the slot is free again


async def test_the_prepared_calls_stay_within_their_bound(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resource_server_async.admission import joint

    monkeypatch.setattr(joint, "PREPARED_CALLS", 3)
    keys = list(range(1, 9))  # eight members: eight limit plans, each its own prepared call
    rule = AllocationRule(1, "team-month", "team", "month", 1, 100, None)  # room for all
    member = {"name": "team", "weight": 1, "order": 1, "globus_group": "", "api_key_ids": keys}
    projects = build_projects([{**member, "default_for": []}], (rule,))
    snapshot = catalog.snapshot
    catalog.install(
        build_snapshot(
            [cluster.row for cluster in snapshot.clusters.values()],
            [endpoint.row for endpoint in snapshot.endpoints.values()],
            projects=projects,
        )
    )
    endpoint = catalog.snapshot.endpoints["c1-vllm-m"]
    prepared = joint_admission(setup.limiter, setup.books.ledger)
    assert prepared is not None
    outcome = RequestOutcome("r", 0.0, 0.0, "cluster", "chat/completions", status=200)
    for key in keys:
        principal = Principal(id=f"api_key:{key}", username=f"k{key}", kind="api_key")
        admitted = chat_request(principal, outcome, 0)
        await admission.admit(admitted, endpoint)
        assert admitted.admission is not None
        [ticket] = admitted.admission.tickets
        assert isinstance(ticket, JointTicket)  # each one decided by the joint script
        assert 0 < len(prepared._prepared) <= 3
    assert await tokens_spent(setup) == len(keys)  # one token each: none lost to a reset table
