"""Step 5 of a request: may it run now, on this endpoint?

`admit` is the one step, a sequence of checks, each in its own module: maintenance notices
(maintenance.py), then request, token and concurrency limits (limits.py); project allocations
and a fair-share queue go after them. What a check holds (a Ticket) is kept on the request's
AdmissionState and released at the end of the request (middleware.py).
"""

from __future__ import annotations

from resource_server_async.admission.limits import AdmissionRequest, LimitRefusal, check_limits
from resource_server_async.admission.maintenance import check_open
from resource_server_async.endpoints.base import BaseEndpoint

__all__ = ["AdmissionRequest", "LimitRefusal", "admit"]


async def admit(request: AdmissionRequest, endpoint: BaseEndpoint) -> None:
    """Raise the caller's error (503 cluster_maintenance, 429 rate_limit_exceeded, 503
    limits_unavailable) when the request may not run on `endpoint` now; otherwise charge its
    limits. Called after authorization, once per endpoint tried."""
    check_open(endpoint.row.cluster, endpoint)
    await check_limits(request, endpoint)
