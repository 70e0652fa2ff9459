"""Federated routes: pick, among every endpoint that serves the model, one that can answer.

Candidates are the endpoints the principal may use whose cluster offers the operation and is
not under maintenance, in catalog order, with those that recently failed moved last. A call
that fails before reaching a model (server unreachable, model not live, key missing) moves on
to the next candidate; once a model may have run, the answer (or error) is final.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from django.conf import settings
from starlette.requests import Request
from starlette.responses import Response

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
    notices = settings.MAINTENANCE_ERROR_NOTICES
    open_ = [e for e in offering if not notices.get(e.row.cluster)]
    if not open_:
        closed = sorted({e.row.cluster for e in offering})
        raise GatewayError(
            503,
            "cluster_maintenance",
            " ".join(str(notices[name]) for name in closed),
            info={"clusters": closed},
        )
    if len(open_) > 1:
        open_.sort(key=backoff.active)  # stable: healthy ones first, catalog order kept
    return open_


# Runs the request on one endpoint (e.g. pipeline.prepare + pipeline.execute).
Attempt = Callable[[BaseEndpoint, pipeline.Admitted], Awaitable[Response]]


async def failover(
    endpoints: list[BaseEndpoint], admitted: pipeline.Admitted, attempt: Attempt
) -> Response:
    """The first answer among `endpoints` (from `candidates`), moving on only past failures
    that happened before any model server received the request."""
    for index, endpoint in enumerate(endpoints):
        try:
            response = await attempt(endpoint, admitted)
        except GatewayError as exc:
            if exc.code in UNWELL_CODES:
                backoff.mark(endpoint)
            if exc.code in FAILOVER_CODES and index + 1 < len(endpoints):
                continue
            raise
        backoff.clear(endpoint)
        return response
    raise AssertionError("candidates() never returns an empty list")


async def run_federated(
    request: Request, *, operation: str, dialect: Dialect, validate: pipeline.Validator
) -> Response:
    """A federated inference request: the model picks the cluster."""
    admitted = await pipeline.admit(request, operation, dialect, validate)

    async def attempt(endpoint: BaseEndpoint, admitted: pipeline.Admitted) -> Response:
        return await pipeline.execute(
            endpoint, pipeline.prepare(endpoint, operation, admitted), dialect
        )

    endpoints = candidates(admitted.principal, admitted.model, operation)
    return await pipeline.cancel_on_disconnect(request, failover(endpoints, admitted, attempt))
