"""GET /resource_server/ready: 200 when this worker's dependencies answer, 503 naming those that
do not (api/readiness.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from resource_server_async import drain
from resource_server_async.api.http import JSONResponse
from resource_server_async.api.readiness import ReadinessProbe


def ready_route() -> Route:
    probe: ReadinessProbe | None = None

    async def ready(request: Request) -> JSONResponse:
        nonlocal probe
        if drain.current().draining:  # SIGTERM came: the proxy should send elsewhere now
            return JSONResponse(
                {"status": "draining", "detail": "this gateway process is shutting down"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        if probe is None:  # built in the serving loop: its lock belongs to that loop
            probe = ReadinessProbe.from_settings()
        answer = await probe.check()
        if answer.ready:
            return JSONResponse({"status": "ready", "checks": answer.checks})
        return JSONResponse(
            {
                "status": "not ready",
                "detail": "not usable: " + ", ".join(answer.failing),
                "checks": answer.checks,
            },
            status_code=503,
            headers={"Retry-After": "5"},
        )

    return Route("/resource_server/ready", ready, methods=["GET"])
