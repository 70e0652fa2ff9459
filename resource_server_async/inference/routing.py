"""Federated routes: pick, among every endpoint that serves the model, one that can answer.

Candidates are the endpoints the principal may use (`auth.permissions.can_use_endpoint`, the
test of `authorize_endpoint`) whose cluster offers the operation and is not under maintenance
(`admission.maintenance_notice`), in catalog order, with those that recently failed moved
last (and, among endpoints with a capacity, those at it after those with room). Each one
tried is admitted (step 5) first; a refusal by the model's own limit
(rpm_model, tpm_model) moves on to the next, a user's limit does not. A call that fails before
reaching a model (server unreachable, model not live, key missing) moves on to the next
candidate; once a model may have run, the answer (or error) is final.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from django.conf import settings
from starlette.requests import Request
from starlette.responses import Response

from resource_server_async import admission
from resource_server_async.admission.maintenance import all_closed_error, maintenance_notice
from resource_server_async.auth.permissions import can_use_endpoint
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.inference import pipeline
from resource_server_async.inference.visibility import listing, usable_models

# Errors raised before any model server received the request: safe to try another endpoint.
FAILOVER_CODES = frozenset(
    {
        "upstream_unreachable",
        "model_not_live",
        "cluster_status_unavailable",
        "endpoint_key_missing",
        "cluster_maintenance",
        "upstream_busy",  # no pooled connection was free: the request was never sent
        "queue_full",  # the endpoint is at capacity with a full queue (admission/capacity.py)
    }
)
# Errors that say an endpoint is unwell even though trying another one is not safe.
UNWELL_CODES = FAILOVER_CODES | {"upstream_timeout"}


class Backoff:
    """Endpoints (by slug) to try last until a moment on the monotonic clock."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def mark(self, endpoint: BaseEndpoint) -> None:
        self._until[endpoint.slug] = time.monotonic() + settings.FEDERATED_BACKOFF_SECONDS

    def clear(self, endpoint: BaseEndpoint) -> None:
        if self._until:
            self._until.pop(endpoint.slug, None)

    def active(self, endpoint: BaseEndpoint) -> bool:
        until = self._until.get(endpoint.slug)
        return until is not None and until > time.monotonic()

    def reset(self) -> None:
        self._until.clear()


backoff = Backoff()


def candidates(principal: Principal, model: str, operation: str) -> list[BaseEndpoint]:
    """Endpoints to try in order; 404 or 503 saying why there are none."""
    usable = [e for e in catalog.endpoints_for_model(model) if can_use_endpoint(principal, e)]
    if not usable:
        raise GatewayError(
            404,
            "model_not_found",
            f"No cluster serves model {model!r} to you. Models you may use with /v1/{operation}: "
            f"{listing(usable_models(principal, operation=operation), 'none')}.",
            param="model",
        )
    offering = [e for e in usable if e.cluster.serves_operation(operation)]
    if not offering:
        clusters = sorted({e.row.cluster for e in usable})
        raise GatewayError(
            404,
            "operation_not_offered",
            f"Model {model!r} is served on {listing(clusters, 'no cluster')}, which does not "
            f"offer /v1/{operation}.",
        )
    open_ = [e for e in offering if maintenance_notice(e.row.cluster) is None]
    if not open_:
        raise all_closed_error(sorted({e.row.cluster for e in offering}))
    if len(open_) > 1:
        open_.sort(key=backoff.active)  # stable: healthy ones first, catalog order kept
    return open_


# Runs the request on one admitted endpoint (e.g. pipeline.prepare + pipeline.execute).
Attempt = Callable[[BaseEndpoint, pipeline.ParsedRequest], Awaitable[Response]]


async def failover(
    endpoints: list[BaseEndpoint], parsed: pipeline.ParsedRequest, attempt: Attempt
) -> Response:
    """The first answer among `endpoints` (from `candidates`, so authorized), moving on only
    past failures that happened before any model server received the request. Endpoints at
    their capacity go after those with a free slot (docs/limits.md#fair-share)."""
    endpoints = await admission.order_by_room(endpoints)
    for index, endpoint in enumerate(endpoints):
        try:
            await admission.admit(parsed, endpoint)
            response = await attempt(endpoint, parsed)
        except admission.LimitRefusal as exc:
            # The model's limit is this endpoint's alone: another one may have room. A user's
            # limit is not a reason to spread one user over every cluster (docs/limits.md).
            if exc.per_endpoint and index + 1 < len(endpoints):
                continue
            raise
        except GatewayError as exc:
            if exc.code in UNWELL_CODES:
                backoff.mark(endpoint)
            if exc.code in FAILOVER_CODES and index + 1 < len(endpoints):
                await admission.give_back_capacity(parsed)  # that server never got it
                continue
            raise
        backoff.clear(endpoint)
        return response
    raise AssertionError("candidates() never returns an empty list")


async def run_federated(
    request: Request, parsed: pipeline.ParsedRequest, *, operation: str, dialect: Dialect
) -> Response:
    """A federated inference request: the model picks the cluster."""

    async def attempt(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
        return await pipeline.execute(
            endpoint, pipeline.prepare(endpoint, operation, parsed), dialect
        )

    endpoints = candidates(parsed.principal, parsed.model, operation)
    return await pipeline.cancel_on_disconnect(request, failover(endpoints, parsed, attempt))
