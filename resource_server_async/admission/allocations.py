"""The allocations check of admission: the request's project's budgets that apply to this
endpoint, charged in one ledger call, or a 429 allocation_exhausted naming the allocation and
when it renews. A request without a project, or whose project has no allocation here, costs
two dictionary reads and no ledger call."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from resource_server_async import runtime
from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.admission.allocation_ledger import Account, Charge, Ledger
from resource_server_async.admission.allocation_periods import period_bounds
from resource_server_async.admission.demand import request_reservation
from resource_server_async.admission.limiter import LimiterUnavailable
from resource_server_async.admission.limits import (
    PLAN_CACHE_ENTRIES,
    UNLIMITED_OPERATIONS,
    AdmissionRequest,
    LimitRefusal,
)
from resource_server_async.admission.ticket import redis_failed
from resource_server_async.catalog.projects import AllocationRule, ProjectRef
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.endpoints.base import BaseEndpoint


class AllocationRequest(AdmissionRequest, Protocol):
    project: ProjectRef | None
    outcome: RequestOutcome | None


def describe(rule: AllocationRule) -> str:
    """ "1,000,000 tokens and 3,600 GPU-seconds per month on model 'llama'"."""
    budgets = []
    if rule.tokens is not None:
        budgets.append(f"{rule.tokens:,} tokens")
    if rule.gpu_seconds is not None:
        budgets.append(f"{rule.gpu_seconds:,} GPU-seconds")
    scope = []
    if rule.model:
        scope.append(f"model {rule.model!r}")
    if rule.cluster:
        scope.append(f"cluster {rule.cluster!r}")
    where = f" on {' on '.join(scope)}" if scope else ""
    return f"{' and '.join(budgets)} per {rule.period}{where}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AllocationRefusal(LimitRefusal):
    """429 allocation_exhausted. Retry-After is the time until the period renews, and
    `x-should-retry: false` tells the official clients not to retry before then. Final on a
    federated route unless the allocation is one cluster's (another cluster may serve it)."""

    def __init__(self, rule: AllocationRule, now: float) -> None:
        _, renews = period_bounds(rule.period, rule.start_day, datetime.fromtimestamp(now, UTC))
        wait = renews.timestamp() - now
        message = (
            f"Allocation {rule.name!r} of project {rule.project!r} is spent "
            f"({describe(rule)}). It renews at {iso(renews)}, in {_duration(wait)}."
        )
        super().__init__(message, wait, per_endpoint=bool(rule.cluster))
        self.code = "allocation_exhausted"
        self.headers["x-should-retry"] = "false"
        self.info = {"allocation": rule.name, "project": rule.project, "renews_at": iso(renews)}


def _duration(seconds: float) -> str:
    seconds = math.ceil(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days} d {hours} h"
    minutes = math.ceil(rest / 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


@dataclass(slots=True)
class AllocationTicket:
    """What one admission charged to allocations: released once, at the end of the request."""

    ledger: Ledger
    accounts: tuple[Account, ...]
    reserved: int
    outcome: RequestOutcome | None

    def release(self, used_tokens: int | None) -> Awaitable[None] | None:
        """Set the reservation to `used_tokens` (None: keep it) and charge the GPU-seconds the
        Compute function reported; a request that used nothing is charged nothing."""
        tokens, gpu = correction(self.reserved, self.outcome, used_tokens)
        if tokens or gpu:
            return self.ledger.settle(self.accounts, tokens, gpu)
        return None


def correction(
    reserved: int, outcome: RequestOutcome | None, used_tokens: int | None
) -> tuple[int, float]:
    """(tokens, GPU-seconds) to add to the accounts at a request's end: the reservation set to
    `used_tokens` (None: kept), and the GPU-seconds the Compute function reported (none for a
    request that used nothing)."""
    tokens = 0 if used_tokens is None else used_tokens - reserved
    gpu = 0.0
    if used_tokens != 0 and outcome is not None and outcome.response_time:
        gpu = max(0.0, outcome.response_time)
    return tokens, gpu


@dataclass(slots=True)
class AllocationPlan:
    """The allocations that apply to a request on an endpoint, and what it is to be charged."""

    applying: list[AllocationRule]
    accounts: tuple[Account, ...]
    tokens: int
    now: float


@dataclass(slots=True)
class PendingCharge:
    """A ledger call sent and not answered yet (send_allocations, finish_allocations)."""

    planned: AllocationPlan
    ledger: Ledger
    charge: Awaitable[Charge]


@dataclass(slots=True)
class _Applying:
    """A project's allocations that apply on one endpoint, and their accounts of the periods
    containing [since, until) (one period each: the same Account objects all period long)."""

    rules: tuple[AllocationRule, ...]  # the project's, held: its id stays its own
    applying: list[AllocationRule]
    books: object = None  # whose accounts these are (a new runtime has its own)
    accounts: tuple[Account, ...] = ()
    since: float = 0.0
    until: float = 0.0


# By (id of the project's rules in the snapshot, endpoint slug): a new snapshot has new rules.
# At most PLAN_CACHE_ENTRIES (one per project and endpoint in use); a full table starts afresh.
_applying: dict[tuple[int, str], _Applying] = {}


def allocation_plan(request: AllocationRequest, endpoint: BaseEndpoint) -> AllocationPlan | None:
    """The project's allocations that apply on `endpoint` (None: no project, or none applies)."""
    project = request.project
    if project is None:
        return None
    rules = catalog.snapshot.projects.allocations.get(project.name)
    if not rules or request.operation in UNLIMITED_OPERATIONS:
        return None
    row = endpoint.row
    found = _applying.get((id(rules), row.slug))
    if found is None or found.rules is not rules:
        applying = [rule for rule in rules if rule.applies(row.cluster, row.model)]
        if len(_applying) >= PLAN_CACHE_ENTRIES:
            _applying.clear()
        found = _applying[(id(rules), row.slug)] = _Applying(rules, applying)
    if not found.applying:
        return None
    now = time.time()
    books = runtime.current.allocations
    if found.books is not books or not found.since <= now < found.until:
        periods = [books.period(rule, now) for rule in found.applying]
        found.accounts = tuple([account for account, _, _ in periods])
        found.since = max(start for _, start, _ in periods)
        found.until = min(end for _, _, end in periods)
        found.books = books
    return AllocationPlan(found.applying, found.accounts, request_reservation(request), now)


def send_allocations(planned: AllocationPlan | None) -> PendingCharge | None:
    """Send the ledger call of the allocations planned (None: none apply, or Redis failed and
    admission fails open)."""
    if planned is None:
        return None
    ledger = runtime.current.allocations.ledger
    try:
        charge = ledger.charge(planned.accounts, planned.tokens, planned.now)
    except LimiterUnavailable as exc:
        redis_failed(exc, "allocations_unavailable", "allocations")
        return None
    return PendingCharge(planned, ledger, charge)


async def check_allocations(request: AllocationRequest, endpoint: BaseEndpoint) -> None:
    """Charge the project's allocations that apply on `endpoint`, or raise the caller's 429."""
    await finish_allocations(request, send_allocations(allocation_plan(request, endpoint)))


async def finish_allocations(
    request: AllocationRequest, pending: PendingCharge | None, *, refused: bool = False
) -> None:
    """The ledger's answer: the charge kept on the request's AdmissionState, or a 429.
    `refused`: another check refused the request; a charge made is kept only to be given back
    at its end (as any endpoint left), and no error is raised."""
    if pending is None:
        return
    try:
        charge = await pending.charge
    except LimiterUnavailable as exc:
        if not refused:
            redis_failed(exc, "allocations_unavailable", "allocations")
        return
    if refused:
        if charge.fresh:
            runtime.current.allocations.wake()
        if charge.admitted:
            _keep(request, pending.ledger, pending.planned)
        return
    accept_charge(request, pending.ledger, pending.planned, charge)


def accept_charge(
    request: AllocationRequest, ledger: Ledger, planned: AllocationPlan, charge: Charge
) -> None:
    """The ledger's answer: the 429 of the first spent allocation, or the charge kept on the
    request's AdmissionState (released at its end)."""
    if charge.fresh:
        runtime.current.allocations.wake()
    if not charge.admitted:
        raise AllocationRefusal(planned.applying[charge.refused_by], planned.now)
    _keep(request, ledger, planned)


def _keep(request: AllocationRequest, ledger: Ledger, planned: AllocationPlan) -> None:
    state = request.admission
    if state is not None:
        ticket = AllocationTicket(ledger, planned.accounts, planned.tokens, request.outcome)
        state.tickets.append(ticket)
