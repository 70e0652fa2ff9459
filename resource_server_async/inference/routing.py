"""Federated routes: pick, among every endpoint that serves the model, the best one that can
answer now, and move on to the next when a call fails before any model server received it.

Candidates are the endpoints the principal may use (`auth.permissions.can_use_endpoint`, the
test of `authorize_endpoint`) whose cluster offers the operation and is not under maintenance
(`admission.maintenance_notice`). They are ranked by (`rank`):

1. the circuit: an endpoint that kept failing is ranked last for a cool-down (circuit.py);
2. its live state, best first: ready > starting > queued > free nodes > reachable > unknown >
   offline (clusters/live_state.py, read in the background);
3. fewest requests in flight, from every gateway worker (load.py, routing_state.py);
4. lowest recent latency (moving average); then catalog order.

A request with a session id goes, among the candidates of the best (circuit, state) class, to
its rendezvous choice (sessions.py). Each endpoint tried is admitted (step 5) first; a refusal by
the model's own limit (rpm_model, tpm_model) moves on, a user's limit does not. A call that fails
before reaching a model (FAILOVER_CODES) moves on while ROUTING_FAILOVER_SECONDS have not passed;
once a model may have run, the answer (or error) is final. Among endpoints with a capacity
(max_concurrent), those with a free slot are tried before those at it (docs/limits.md).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial

from django.conf import settings
from starlette.requests import Request
from starlette.responses import Response

from resource_server_async import admission, runtime
from resource_server_async.admission.maintenance import all_closed_error, maintenance_notice
from resource_server_async.auth.permissions import can_use_endpoint
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.clusters.live_state import LiveState
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.endpoints.routing_state import RoutingState
from resource_server_async.errors import GatewayError
from resource_server_async.inference import pipeline
from resource_server_async.inference.sessions import session_choice, session_of
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
        "endpoint_offline",  # the Globus Compute endpoint is offline: nothing was submitted
        "model_starting",  # no worker yet: nothing was submitted
    }
)
# Errors that say an endpoint is unwell (they count toward its circuit) even though trying
# another one is not safe.
UNWELL_CODES = FAILOVER_CODES | {"upstream_timeout"}


def candidates(principal: Principal, model: str, operation: str) -> list[BaseEndpoint]:
    """Endpoints that may serve the request, in catalog order; 404 or 503 saying why there are
    none."""
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
    return open_


def rank(
    endpoints: list[BaseEndpoint],
    states: list[LiveState],
    state: RoutingState,
    session: str | None = None,
) -> list[BaseEndpoint]:
    """`endpoints` (with their live `states`) in the order to try them."""
    blocked, load = state.circuits.blocked, state.load
    keyed = sorted(
        (
            (blocked(e.slug), -s, load.in_flight(e.slug), load.latency(e.slug), i)
            for i, (e, s) in enumerate(zip(endpoints, states, strict=True))
        )
    )
    ranked = [endpoints[key[-1]] for key in keyed]
    if session is not None:
        best = keyed[0][:2]
        group = [endpoints[key[-1]] for key in keyed if key[:2] == best]
        if len(group) > 1:
            chosen = session_choice(session, group)
            ranked.remove(chosen)
            ranked.insert(0, chosen)
    return ranked


async def ordered(endpoints: list[BaseEndpoint], session: str | None) -> list[BaseEndpoint]:
    """The candidates ranked; waits (LIVE_STATE_FIRST_WAIT at most) only for live states never
    read, so only the first requests after start-up wait."""
    if len(endpoints) == 1:
        return endpoints
    live = runtime.current.live_states
    peeked = [live.peek(e) for e in endpoints]
    if None in peeked:
        read = await live.read(endpoints, settings.LIVE_STATE_FIRST_WAIT)
        states = [read[e.slug] for e in endpoints]
    else:
        states = [s for s in peeked if s is not None]
    return rank(endpoints, states, runtime.current.routing, session)


# Runs the request on one admitted endpoint (e.g. pipeline.prepare + pipeline.execute).
Attempt = Callable[[BaseEndpoint, pipeline.ParsedRequest], Awaitable[Response]]


async def failover(
    endpoints: list[BaseEndpoint], parsed: pipeline.ParsedRequest, attempt: Attempt
) -> Response:
    """The first answer among `endpoints` (from `candidates`, so authorized), moving on only
    past failures that happened before any model server received the request, and only while
    ROUTING_FAILOVER_SECONDS have not passed since the first try. Endpoints at their capacity
    go after those with a free slot (docs/limits.md#fair-share)."""
    endpoints = await admission.order_by_room(endpoints)
    state = runtime.current.routing
    circuits, load = state.circuits, state.load
    give_up = time.monotonic() + settings.ROUTING_FAILOVER_SECONDS
    last = len(endpoints) - 1
    for index, endpoint in enumerate(endpoints):
        slug = endpoint.slug
        more = index < last and time.monotonic() < give_up
        try:
            await admission.admit(parsed, endpoint)
        except admission.LimitRefusal as exc:
            # The model's limit is this endpoint's alone: another one may have room. A user's
            # limit is not a reason to spread one user over every cluster (docs/limits.md).
            if exc.per_endpoint and more:
                continue
            raise
        except GatewayError as exc:
            # A full queue (admission/capacity.py) or maintenance: another one may take it.
            if exc.code in FAILOVER_CODES and more:
                continue
            raise
        circuits.attempting(slug)
        load.begin(slug)
        started = time.perf_counter()
        try:
            response = await attempt(endpoint, parsed)
        except BaseException as exc:
            load.end(slug)
            if isinstance(exc, GatewayError) and exc.code in UNWELL_CODES:
                circuits.failed(slug)
                if exc.code in FAILOVER_CODES and more:
                    await admission.give_back_capacity(parsed)  # that server never got it
                    continue
            raise
        load.observe(slug, time.perf_counter() - started)
        circuits.succeeded(slug)
        if isinstance(response, pipeline.EventStreamResponse):
            response.on_close(partial(load.end, slug))  # in flight until the stream ends
        else:
            load.end(slug)
        return pipeline.mark_served(response, endpoint)
    raise AssertionError("candidates() never returns an empty list")


async def serve(
    request: Request, parsed: pipeline.ParsedRequest, offered: str, attempt: Attempt
) -> Response:
    """A federated request, for every API family: the candidates that offer `offered`, ranked,
    tried in turn with `attempt`; the answer says where it was served."""
    runtime.current.routing.start_sharing()
    endpoints = candidates(parsed.principal, parsed.model, offered)
    endpoints = await ordered(endpoints, session_of(request))
    return await pipeline.cancel_on_disconnect(request, failover(endpoints, parsed, attempt))
