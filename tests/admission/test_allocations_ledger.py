"""One suite for both allocation ledgers (in-process and Redis), the periods, and renewal at
the period boundary with a frozen clock, through admission's own check."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import time_machine

from resource_server_async import runtime
from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.admission import allocations
from resource_server_async.admission.allocation_books import AllocationBooks
from resource_server_async.admission.allocation_ledger import (
    Account,
    Ledger,
    MemoryLedger,
    RedisLedger,
    Spent,
)
from resource_server_async.admission.allocation_periods import account_for, period_bounds
from resource_server_async.admission.allocations import AllocationRefusal, check_allocations
from resource_server_async.admission.redis_scripts import RedisScripts
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.projects import AllocationRule, build_projects
from resource_server_async.catalog.snapshot import build_snapshot, catalog
from resource_server_async.clusters.base import ClusterRow
from resource_server_async.endpoints.base import BaseEndpoint, EndpointRow
from resource_server_async.inference.pipeline import ParsedRequest
from resource_server_async.runtime import Runtime
from tests.admission.parsed import chat_request
from tests.admission.releases import settled
from tests.config.helpers import DIRECT_CLUSTER, DIRECT_ENDPOINT

FAR = 4_000_000_000.0  # an expiry far in the future


@pytest.fixture(params=["memory", "redis"])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[Ledger]:
    if request.param == "redis":
        url = os.environ.get("REDIS_URL", "")
        if not url:
            pytest.skip("REDIS_URL is not set (the CI's second run sets it)")
        calls = RedisScripts(url, timeout=1, pending=100)
        built: Ledger = RedisLedger(calls)
    else:
        built = MemoryLedger()
    yield built
    await built.close()
    if request.param == "redis":
        await calls.close()


def account(tokens: int | None = None, gpu: int | None = None) -> Account:
    return Account(f"test-alloc:{uuid.uuid4().hex}", tokens, gpu, FAR)


async def test_admits_while_something_is_left_then_refuses(ledger: Ledger) -> None:
    budget = account(tokens=10)
    first = await ledger.charge([budget], 6, 1000.0)
    assert first.admitted and first.fresh
    second = await ledger.charge([budget], 6, 1001.0)  # 6 of 10 spent: something is left
    assert second.admitted and not second.fresh
    assert second.spent[0].tokens == 6
    third = await ledger.charge([budget], 1, 1002.0)
    assert third.refused_by == 0
    assert third.spent[0].tokens == 12
    # The real usage corrects the reservations: 2 and 3 used, 5 left.
    await settled(ledger.settle([budget], 2 - 6, 0.0))
    await settled(ledger.settle([budget], 3 - 6, 0.0))
    assert (await ledger.charge([budget], 1, 1003.0)).admitted
    assert (await ledger.read([budget.key]))[0] == Spent(6, 0.0, False, 1000.0)


async def test_one_spent_account_refuses_and_charges_none(ledger: Ledger) -> None:
    tokens, gpu = account(tokens=100), account(gpu=5)
    assert (await ledger.charge([tokens, gpu], 10, 1.0)).admitted
    await settled(ledger.settle([tokens, gpu], 0, 5.5))  # the Compute function took 5.5 GPU-seconds
    refused = await ledger.charge([tokens, gpu], 10, 2.0)
    assert refused.refused_by == 1
    spent = await ledger.read([tokens.key, gpu.key])
    assert spent[0] is not None and spent[0].tokens == 10
    assert spent[1] is not None and spent[1].gpu_seconds == 5.5


async def test_settling_a_lost_account_leaves_it_to_the_records(ledger: Ledger) -> None:
    lost = account(tokens=10)
    await settled(ledger.settle([lost], 5, 1.0))
    assert (await ledger.read([lost.key])) == [None]


async def test_a_lost_count_is_rebuilt_from_the_records_once(ledger: Ledger) -> None:
    budget = account(tokens=100)
    # The count was lost: a request meets a new account, charged from zero, unbuilt.
    await ledger.charge([budget], 7, 500.0)
    seen = (await ledger.read([budget.key]))[0]
    assert seen is not None and not seen.built and seen.created == 500.0
    # The records show 40 tokens before the account was made, 40 + 5 in the whole period.
    await ledger.reconcile(budget, seen, Spent(40, 1.5), Spent(45, 1.5), 501.0)
    rebuilt = (await ledger.read([budget.key]))[0]
    assert rebuilt is not None and rebuilt.built
    assert (rebuilt.tokens, rebuilt.gpu_seconds) == (47, 1.5)
    # Later passes never add the same records again; they only lift to what the records show.
    await ledger.reconcile(budget, seen, Spent(40, 1.5), Spent(45, 1.5), 502.0)
    await ledger.reconcile(budget, rebuilt, Spent(0, 0), Spent(60, 2.0), 503.0)
    final = (await ledger.read([budget.key]))[0]
    assert final is not None and (final.tokens, final.gpu_seconds) == (60, 2.0)


async def test_a_missing_account_is_made_from_the_records(ledger: Ledger) -> None:
    budget = account(tokens=30)
    await ledger.reconcile(budget, None, Spent(0, 0), Spent(30, 0), 10.0)
    assert (await ledger.charge([budget], 1, 11.0)).refused_by == 0


def test_periods_start_on_their_day_at_utc_midnight() -> None:
    moment = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)  # a Thursday
    assert period_bounds("month", 1, moment) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("month", 15, datetime(2026, 1, 3, tzinfo=UTC)) == (
        datetime(2025, 12, 15, tzinfo=UTC),
        datetime(2026, 1, 15, tzinfo=UTC),
    )
    assert period_bounds("week", 1, moment) == (
        datetime(2026, 12, 28, tzinfo=UTC),
        datetime(2027, 1, 4, tzinfo=UTC),
    )
    assert period_bounds("week", 4, moment)[0] == datetime(2026, 12, 31, tzinfo=UTC)
    assert period_bounds("day", 1, moment) == (
        datetime(2026, 12, 31, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


RULE = AllocationRule(1, "team-month", "team", "month", 1, 6, None, model="m")
PRINCIPAL = Principal(id="api_key:1", username="k", kind="api_key")


def _endpoint(rule: AllocationRule = RULE) -> BaseEndpoint:
    cluster = ClusterRow("c1", DIRECT_CLUSTER, ("vllm",), ("chat/completions",))
    row = EndpointRow(
        "c1-vllm-m", "c1", "vllm", "m", DIRECT_ENDPOINT, config={"api_url": "http://127.0.0.1:9"}
    )
    projects = build_projects(
        [
            {
                "name": "team",
                "weight": 1,
                "order": 1,
                "globus_group": "",
                "api_key_ids": [1],
                "default_for": [],
            }
        ],
        (rule,),
    )
    catalog.install(build_snapshot([cluster], [row], projects=projects))
    return catalog.snapshot.endpoints["c1-vllm-m"]


def _request(outcome: RequestOutcome) -> ParsedRequest:
    return chat_request(PRINCIPAL, outcome, max_tokens=0)


async def _spend(endpoint: BaseEndpoint, used: int) -> None:
    outcome = RequestOutcome("r", 0.0, 0.0, "cluster", "chat/completions", status=200)
    request = _request(outcome)
    await check_allocations(request, endpoint)
    outcome.total_tokens = used
    assert request.admission is not None
    await request.admission.release(outcome)


@pytest.fixture
async def books(ledger: Ledger) -> AsyncIterator[AllocationBooks]:
    previous = catalog.snapshot
    built = Runtime.from_settings()
    # The books without their reconciler: these tests have no records to rebuild from.
    books = AllocationBooks(ledger, prefix=f"test-alloc:{uuid.uuid4().hex}:", interval=60)
    built._allocations = books
    async with runtime.installed(built):
        yield books
    catalog.install(previous)


async def test_the_budget_renews_at_the_period_boundary(books: AllocationBooks) -> None:
    endpoint = _endpoint()
    # Next year: Redis expires keys by its own clock, which no frozen clock here moves.
    year = datetime.now(UTC).year + 1
    with time_machine.travel(datetime(year, 11, 30, 23, 59, 0, tzinfo=UTC), tick=False) as clock:
        await _spend(endpoint, 3)
        await _spend(endpoint, 3)
        outcome = RequestOutcome("r", 0.0, 0.0, "cluster", "chat/completions")
        with pytest.raises(AllocationRefusal) as refused:
            await check_allocations(_request(outcome), endpoint)
        assert refused.value.headers["Retry-After"] == "60"
        assert refused.value.info == {
            "allocation": "team-month",
            "project": "team",
            "renews_at": f"{year}-12-01T00:00:00Z",
        }
        assert "in 1 min" in refused.value.message
        clock.move_to(datetime(year, 12, 1, 0, 0, 0, tzinfo=UTC))
        await _spend(endpoint, 6)  # a new month: the whole budget again
        with pytest.raises(AllocationRefusal) as again:
            await check_allocations(_request(outcome), endpoint)
        assert again.value.info is not None
        assert again.value.info["renews_at"] == f"{year + 1}-01-01T00:00:00Z"
    november = account_for(RULE, datetime(year, 11, 15, tzinfo=UTC), books.prefix)
    december = account_for(RULE, datetime(year, 12, 15, tzinfo=UTC), books.prefix)
    spent = await books.ledger.read([november.key, december.key])
    assert [s.tokens if s else None for s in spent] == [6, 6]


async def test_a_request_that_failed_gives_its_reservation_back(books: AllocationBooks) -> None:
    endpoint = _endpoint()
    outcome = RequestOutcome("r", 0.0, 0.0, "cluster", "chat/completions", status=502)
    outcome.error_code = "upstream_error"
    request = _request(outcome)
    request.body["max_tokens"] = 100
    await check_allocations(request, endpoint)
    assert request.admission is not None
    await request.admission.release(outcome)
    key = account_for(RULE, datetime.now(UTC), books.prefix).key
    spent = (await books.ledger.read([key]))[0]
    assert spent is not None and spent.tokens == 0


async def test_a_request_without_a_project_meets_no_allocation(books: AllocationBooks) -> None:
    endpoint = _endpoint()
    outcome = RequestOutcome("r", 0.0, 0.0, "cluster", "chat/completions")
    request = _request(outcome)
    request.project = None
    await check_allocations(request, endpoint)
    assert request.admission is not None and request.admission.tickets == []
    key = account_for(RULE, datetime.now(UTC), books.prefix).key
    assert (await books.ledger.read([key])) == [None]


async def test_gpu_seconds_are_charged_from_the_compute_functions_response_time(
    books: AllocationBooks,
) -> None:
    rule = AllocationRule(2, "team-gpu", "team", "day", 1, None, 10)
    endpoint = _endpoint(rule)
    for _ in range(4):  # 4 x 3.0 GPU-seconds: the fourth passes (9 < 10 before it), then none
        outcome = RequestOutcome("r", 0.0, 0.0, "cluster", "chat/completions", status=200)
        request = _request(outcome)
        await check_allocations(request, endpoint)
        outcome.total_tokens, outcome.response_time = 5, 3.0
        assert request.admission is not None
        await request.admission.release(outcome)
    with pytest.raises(AllocationRefusal) as refused:
        await check_allocations(_request(outcome), endpoint)
    assert "10 GPU-seconds per day" in refused.value.message
    key = books.account(rule, time.time()).key
    spent = (await books.ledger.read([key]))[0]
    assert spent is not None and (spent.tokens, spent.gpu_seconds) == (20, 12.0)


async def test_the_allocation_plans_cached_are_bounded(
    books: AllocationBooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(allocations, "PLAN_CACHE_ENTRIES", 5)
    _endpoint()  # the snapshot with project "team" and its rule on model "m"
    outcome = RequestOutcome("r", 0.0, 0.0, "cluster", "chat/completions")
    sizes = []
    for n in range(40):
        other = SimpleNamespace(row=SimpleNamespace(slug=f"c1-vllm-m{n}", cluster="c1", model="m"))
        assert allocations.allocation_plan(_request(outcome), other) is not None
        sizes.append(len(allocations._applying))
    assert max(sizes) == 5
    # Its accounts are the books' own, the same objects all period.
    planned = allocations.allocation_plan(_request(outcome), other)
    assert planned is not None and planned.accounts[0] is books.account(RULE, time.time())
