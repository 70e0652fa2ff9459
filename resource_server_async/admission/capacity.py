"""The fair-share check of admission: an endpoint's capacity (`max_concurrent`) and its queue.

An endpoint with `max_concurrent` > 0 admits that many requests in flight to its model server,
counted over every worker and host (Redis) or in this process. Past it, a request waits in the
endpoint's queue, served in weighted fair order across projects and by `x-priority` within a
project (docs/limits.md#fair-share). The slot is a hold on the request's AdmissionState,
released at the end of the request like the limits' tickets. 0 = no capacity: nothing runs.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from starlette.datastructures import Headers

from resource_server_async import runtime
from resource_server_async.admission.allocations import AllocationRequest
from resource_server_async.admission.limiter import LimiterUnavailable
from resource_server_async.admission.limits import UNLIMITED_OPERATIONS
from resource_server_async.admission.ticket import warn_rarely
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import GatewayError

# x-priority -> its rank in a project's queue (smaller is served first).
PRIORITIES = {"high": 0, "normal": 1, "low": 2}
NORMAL = PRIORITIES["normal"]
# A refused or timed-out request is told to come back in a second: when a slot frees is unknown.
QUEUE_RETRY_SECONDS = 1


class CapacityRequest(AllocationRequest, Protocol):
    """What the fair-share check reads besides: the request's headers (x-priority)."""

    headers: Headers | None


@dataclass(frozen=True, slots=True)
class Place:
    """One request's claim on an endpoint's capacity: who it is charged to, and its bounds."""

    endpoint: str  # the endpoint's slug
    limit: int  # max_concurrent
    ticket: str
    project: str  # "p:<name>", or "u:<principal id>" for a principal in no project
    weight: float
    priority: int  # PRIORITIES' rank
    max_queued: int
    max_queued_project: int


class QueueFull(Exception):
    """The endpoint's queue, or the project's share of it, has no room."""

    def __init__(self, project_full: bool) -> None:
        super().__init__("project" if project_full else "endpoint")
        self.project_full = project_full


class Capacity(Protocol):
    async def enter(self, place: Place, timeout: float) -> bool:
        """Take a slot now, or wait in the queue for up to `timeout` seconds; False when the
        wait ran out (the place has left the queue). Raises QueueFull; when cancelled (the
        client left), leaves the queue, or gives back the slot just granted, and re-raises."""
        ...

    async def leave(self, place: Place) -> None:
        """Give the slot back (or leave the queue); the next waiter is served."""
        ...

    async def has_room(self, endpoints: Sequence[tuple[str, int]]) -> list[bool]:
        """For each (slug, max_concurrent): could a request start there now without waiting?"""
        ...

    async def queued(self, endpoint: str) -> int:
        """Requests waiting for the endpoint now."""
        ...

    async def close(self) -> None: ...


def build_capacity() -> Capacity:
    """Redis with REDIS_URL (shared by every worker and host), else in-process."""
    if settings.REDIS_URL:
        from resource_server_async.admission.redis_fair_queue import RedisFairQueue

        return RedisFairQueue.from_settings()
    from resource_server_async.admission.fair_queue import MemoryFairQueue

    return MemoryFairQueue.from_settings()


@dataclass(slots=True)
class CapacityHold:
    """A slot held on an endpoint: released once, at the end of the request."""

    capacity: Capacity
    place: Place

    def release(self, used_tokens: int | None) -> Awaitable[None]:
        return self.capacity.leave(self.place)


def priority_of(request: CapacityRequest) -> int:
    """The request's `x-priority` (absent: normal); 400 for another value."""
    value = request.headers.get("x-priority") if request.headers is not None else None
    if value is None:
        return NORMAL
    rank = PRIORITIES.get(value.strip().lower())
    if rank is None:
        raise GatewayError(
            400,
            "invalid_priority",
            f"x-priority must be one of high, normal, low, not {value!r}. It orders only your "
            "own project's requests while the model is at capacity.",
        )
    return rank


def place_for(request: CapacityRequest, endpoint: BaseEndpoint) -> Place:
    project = request.project  # the project it is charged to (catalog/projects.py)
    if project is None:  # a principal in no project is a project of its own, weight 1
        key, weight = f"u:{request.principal.id}", 1.0
    else:
        key, weight = f"p:{project.name}", float(project.weight or 1)
    return Place(
        endpoint.row.slug,
        endpoint.row.max_concurrent,
        uuid.uuid4().hex,
        key,
        weight,
        priority_of(request),
        settings.FAIR_SHARE_MAX_QUEUED,
        settings.FAIR_SHARE_MAX_QUEUED_PER_PROJECT,
    )


async def take_capacity(request: CapacityRequest, endpoint: BaseEndpoint) -> None:
    """Hold one of the endpoint's slots, waiting in its fair queue if need be; or raise the
    caller's 503 (queue_full, queue_timeout; limits_unavailable when Redis is down and
    LIMITS_REDIS_FAILURE=closed). Called by admit() only when max_concurrent > 0."""
    if request.operation in UNLIMITED_OPERATIONS:
        return
    place = place_for(request, endpoint)
    capacity = runtime.current.capacity
    timeout = settings.FAIR_SHARE_QUEUE_TIMEOUT_SECONDS
    try:
        entered = await capacity.enter(place, timeout)
    except QueueFull as full:
        whose = "your project's share of" if full.project_full else ""
        raise _busy(
            "queue_full",
            f"{endpoint.row.model!r} is at capacity and {whose} its queue is full "
            f"({place.max_queued_project if full.project_full else place.max_queued} waiting). "
            "Try again shortly.",
        ) from None
    except LimiterUnavailable as exc:
        if settings.LIMITS_REDIS_FAILURE == "closed":
            raise GatewayError(
                503,
                "limits_unavailable",
                "The gateway cannot check the model's capacity right now; try again shortly.",
                headers={"Retry-After": "1"},
            ) from exc
        warn_rarely(f"fair share: Redis did not answer ({exc}); admitting without capacity")
        return
    if not entered:
        raise _busy(
            "queue_timeout",
            f"{endpoint.row.model!r} is at capacity and your request waited {timeout:g} s in "
            "its queue without a slot. Try again shortly.",
        )
    if request.admission is not None:
        request.admission.tickets.append(CapacityHold(capacity, place))
    else:  # no middleware to release it (an app built without it): do not leak the slot
        await capacity.leave(place)


async def give_back_capacity(request: CapacityRequest) -> None:
    """Free the slot of the endpoint just left for another (federated failover) now, not at
    the end of the request: its server never received the request."""
    state = request.admission
    if state is None or not state.tickets:
        return
    for hold in state.tickets[state.last_attempt :]:
        if isinstance(hold, CapacityHold):
            state.tickets.remove(hold)
            with contextlib.suppress(LimiterUnavailable):  # it frees itself by its lease
                await hold.release(0)


async def order_by_room(endpoints: list[BaseEndpoint]) -> list[BaseEndpoint]:
    """Federated candidates with those that have a free slot first (the order kept otherwise):
    a full endpoint's queue must not hold a request that another cluster could serve now. When
    every one is full, the request queues on the first. One call, only for capacities."""
    if len(endpoints) < 2 or not any(e.row.max_concurrent for e in endpoints):
        return endpoints
    bounded = [e for e in endpoints if e.row.max_concurrent]
    try:
        room = await runtime.current.capacity.has_room(
            [(e.row.slug, e.row.max_concurrent) for e in bounded]
        )
    except LimiterUnavailable:
        return endpoints  # admission itself decides what an outage means
    full = {e.row.slug for e, free in zip(bounded, room, strict=True) if not free}
    if not full:
        return endpoints
    return sorted(endpoints, key=lambda e: e.row.slug in full)


def _busy(code: str, message: str) -> GatewayError:
    return GatewayError(503, code, message, headers={"Retry-After": str(QUEUE_RETRY_SECONDS)})
