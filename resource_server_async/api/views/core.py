"""Public service routes: health and per-cluster availability."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from resource_server_async.admission.maintenance import maintenance_notice
from resource_server_async.api.http import JSONResponse
from resource_server_async.catalog.snapshot import catalog

_HEALTH_OK = b'{"status":"ok"}'


async def health(request: Request) -> JSONResponse:
    if not catalog.loaded:
        return JSONResponse(
            {"status": "starting", "detail": "catalog not loaded yet"}, status_code=503
        )
    return JSONResponse(_HEALTH_OK)


async def status(request: Request) -> JSONResponse:
    """{"<cluster>": true|false}; false = under maintenance (MAINTENANCE_ERROR_NOTICES), by the
    same rule as the requests' admission."""
    clusters = catalog.snapshot.clusters
    return JSONResponse({name: maintenance_notice(name) is None for name in clusters})


routes = [
    Route("/resource_server/health", health, methods=["GET"]),
    Route("/resource_server/status", status, methods=["GET"]),
]
