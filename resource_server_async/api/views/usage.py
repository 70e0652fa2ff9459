"""GET /resource_server/v1/usage: the caller's requests, tokens and errors per model and day,
and the allocations of the caller's projects with what they spent and have left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from starlette.requests import Request
from starlette.routing import Route

from resource_server_async import runtime
from resource_server_async.accounting import usage
from resource_server_async.admission.allocation_ledger import Spent
from resource_server_async.admission.allocation_periods import account_for
from resource_server_async.admission.limiter import LimiterUnavailable
from resource_server_async.api.http import JSONResponse
from resource_server_async.auth.authenticate import authenticate
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.projects import AllocationRule
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.errors import GatewayError

# An allocation of the caller's, with what admission counts it spent (None: ask the records).
Live = list[tuple[AllocationRule, Spent | None]]

# Filters only operators may use: they reach beyond the caller's own records.
_OPERATOR_ONLY = ("principal", "group")


@dataclass(frozen=True, slots=True)
class UsageParameters:
    start: date
    end: date
    principal: str  # "" = the caller
    group: str
    cluster: str
    model: str


def _date(request: Request, name: str, default: date) -> date:
    raw = request.query_params.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise GatewayError(
            400, "invalid_date", f"{name}={raw!r} is not an ISO date (2026-11-30).", param=name
        ) from None


def read_parameters(request: Request) -> UsageParameters:
    """The window (whole UTC days, both included) and the filters, checked (400)."""
    today = datetime.now(UTC).date()
    end = _date(request, "end", today)
    start = _date(request, "start", end - timedelta(days=settings.USAGE_DEFAULT_DAYS - 1))
    if start > end:
        raise GatewayError(400, "invalid_window", "start is after end.", param="start")
    days = (end - start).days + 1
    if days > settings.USAGE_MAX_DAYS:
        raise GatewayError(
            400,
            "window_too_long",
            f"The window has {days} days; at most {settings.USAGE_MAX_DAYS} (USAGE_MAX_DAYS) "
            "may be asked at once.",
            param="start",
        )
    params = request.query_params
    return UsageParameters(
        start=start,
        end=end,
        principal=params.get("principal", ""),
        group=params.get("group", ""),
        cluster=params.get("cluster", ""),
        model=params.get("model", ""),
    )


def answer(
    principal: Principal, asked: UsageParameters, live: Live | None = None
) -> dict[str, Any]:
    """The usage document (runs in the usage thread: it queries the database)."""
    reaching = [name for name in _OPERATOR_ONLY if getattr(asked, name)]
    if asked.principal == principal.id:
        reaching.remove("principal")
    if reaching and not usage.is_operator(principal):
        raise GatewayError(
            403,
            "operator_only",
            f"Only operators may ask for {' or '.join(reaching)}; without it, the answer is "
            "your own usage.",
            param=reaching[0],
        )
    query = usage.UsageQuery(
        start=asked.start,
        end=asked.end,
        by=("day", "model"),
        principal_id=asked.principal or principal.id,
        group=asked.group,
        cluster=asked.cluster,
        model=asked.model,
    )
    try:
        rows = usage.summarize(query, limit=settings.USAGE_MAX_ROWS)
    except usage.TooManyRows as exc:
        raise GatewayError(
            400,
            "too_many_rows",
            f"The answer would hold more than {exc.limit} rows (USAGE_MAX_ROWS); ask for a "
            "shorter window or one model.",
        ) from None
    now = datetime.now(UTC)
    return {
        "object": "usage",
        "principal": query.principal_id,
        "start": query.start.isoformat(),
        "end": query.end.isoformat(),
        "group": query.group or None,
        "cluster": query.cluster or None,
        "model": query.model or None,
        "data": [row.as_dict() for row in rows],
        "total": usage.totals(query),
        "allocations": [usage.allocation_usage(rule, now, spent) for rule, spent in live or ()],
    }


async def live_allocations(principal: Principal) -> Live:
    """The allocations of the principal's projects, with the ledger's counts when it has them."""
    projects = catalog.snapshot.projects
    rules = [
        rule for ref in projects.of(principal) for rule in projects.allocations.get(ref.name, ())
    ]
    if not rules:
        return []
    books = runtime.current.allocations
    now = datetime.now(UTC)
    try:
        spent = await books.ledger.read([account_for(r, now, books.prefix).key for r in rules])
    except LimiterUnavailable:
        spent = [None] * len(rules)  # the records then
    return list(zip(rules, spent, strict=True))


async def usage_view(request: Request) -> JSONResponse:
    principal = await authenticate(request)
    asked = read_parameters(request)
    own = asked.principal in ("", principal.id)
    live = await live_allocations(principal) if own else []
    return JSONResponse(await runtime.current.usage_reader.run(answer, principal, asked, live))


routes = [Route("/resource_server/v1/usage", usage_view, methods=["GET"])]
