"""Step 5 of a request: may it run now? Today the maintenance notices; the place for request
and token limits (per user, per model) and project allocations, which the next issue adds."""

from __future__ import annotations

from resource_server_async.admission.maintenance import check_open
from resource_server_async.auth.principal import Principal
from resource_server_async.endpoints.base import BaseEndpoint


def admit(principal: Principal, endpoint: BaseEndpoint) -> None:
    """Raise the caller's error (503 cluster_maintenance) when the request may not run on
    `endpoint` now. Called after authorization, once per endpoint tried."""
    check_open(endpoint.row.cluster)
