"""Step 5 of a request: may it run now, on this endpoint?

`admit` is the one step, a sequence of checks, each in its own module: maintenance notices
(maintenance.py), then request, token and concurrency limits (limits.py), then the project's
allocations (allocations.py), then the endpoint's capacity and its fair-share queue
(capacity.py). What a check holds (a Ticket, an AllocationTicket, a CapacityHold) is kept on
the request's AdmissionState and released at the end of the request (middleware.py).
"""

from __future__ import annotations

from resource_server_async.admission.allocations import (
    AllocationPlan,
    allocation_plan,
    finish_allocations,
    send_allocations,
)
from resource_server_async.admission.capacity import (
    CapacityRequest,
    give_back_capacity,
    order_by_room,
    take_capacity,
)
from resource_server_async.admission.joint import (
    decide_jointly,
    joint_failed,
    runtime_joint,
    send_jointly,
)
from resource_server_async.admission.limits import (
    AdmissionRequest,
    LimitRefusal,
    Plan,
    finish_limits,
    limit_plan,
    send_limits,
)
from resource_server_async.admission.maintenance import check_open
from resource_server_async.admission.redis_pipe import RedisUnavailable
from resource_server_async.endpoints.base import BaseEndpoint

__all__ = ["AdmissionRequest", "LimitRefusal", "admit", "give_back_capacity", "order_by_room"]


async def admit(request: CapacityRequest, endpoint: BaseEndpoint) -> None:
    """Raise the caller's error (503 cluster_maintenance, 429 rate_limit_exceeded or
    allocation_exhausted, 503 limits_unavailable, 503 queue_full / queue_timeout) when the
    request may not run on `endpoint` now; otherwise charge its limits and allocations and hold
    a slot of the endpoint's capacity (waiting for one in its fair queue). Called after
    authorization, once per endpoint tried."""
    check_open(endpoint.row.cluster, endpoint)
    if request.admission is not None:
        request.admission.begin_attempt()
    planned = limit_plan(request, endpoint)
    allocation = allocation_plan(request, endpoint)
    joint = None
    if planned is not None and allocation is not None:
        # Both apply: on Redis, one script decides both (joint.py).
        joint = runtime_joint()
        if joint is not None:
            sent = send_jointly(joint, planned, allocation)
            if sent is not None:
                try:
                    out = await sent[3]
                except RedisUnavailable as exc:
                    joint_failed(joint, exc)
                else:
                    decide_jointly(request, endpoint, joint, planned, allocation, sent, out)
    if joint is None:
        await _admit_separately(request, endpoint, planned, allocation)
    if endpoint.row.max_concurrent:
        await take_capacity(request, endpoint)


async def _admit_separately(
    request: CapacityRequest,
    endpoint: BaseEndpoint,
    planned: Plan | None,
    allocation: AllocationPlan | None,
) -> None:
    """Limits and allocations as two calls (in-process, or only one applies). Both calls are
    sent before either is awaited: on Redis they share one write and read."""
    limits = send_limits(planned)
    try:
        allocations = send_allocations(allocation)
    except BaseException:
        await finish_limits(request, endpoint, limits)  # its ticket is released at the end
        raise
    try:
        await finish_limits(request, endpoint, limits)
    except BaseException:
        await finish_allocations(request, allocations, refused=True)
        raise
    await finish_allocations(request, allocations)
