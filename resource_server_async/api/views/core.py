"""Public service routes: health and per-cluster availability."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from resource_server_async.admission.maintenance import Closure, closure
from resource_server_async.api.http import JSONResponse
from resource_server_async.catalog.snapshot import catalog

_HEALTH_OK = b'{"status":"ok"}'


async def health(request: Request) -> JSONResponse:
    if not catalog.loaded:
        return JSONResponse(
            {"status": "starting", "detail": "catalog not loaded yet"}, status_code=503
        )
    return JSONResponse(_HEALTH_OK)


def _state(found: Closure | None) -> dict[str, Any]:
    if found is None:
        return {"state": "open", "message": None, "until": None}
    until = None if found.until is None else datetime.fromtimestamp(found.until, UTC).isoformat()
    return {"state": "maintenance", "message": found.notice, "until": until}


async def status(request: Request) -> JSONResponse:
    """{"<cluster>": true|false} (CONTRACT.md §2); false = under maintenance, by the same rule
    as the requests' admission (notices, cluster-wide windows). With `?detail=true`, each
    cluster's state, message and the end of its window."""
    closures = {name: closure(name) for name in catalog.snapshot.clusters}
    if request.query_params.get("detail", "").lower() in ("1", "true", "yes"):
        return JSONResponse({name: _state(found) for name, found in closures.items()})
    return JSONResponse({name: found is None for name, found in closures.items()})


routes = [
    Route("/resource_server/health", health, methods=["GET"]),
    Route("/resource_server/status", status, methods=["GET"]),
]
