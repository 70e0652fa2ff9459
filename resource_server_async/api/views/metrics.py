"""GET /metrics: the Prometheus scrape, beside /resource_server/ (accounting/exposition.py)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resource_server_async import runtime
from resource_server_async.accounting import exposition


async def metrics(request: Request) -> Response:
    client = request.scope.get("client")
    exposition.check_access(client[0] if client else None, request.headers.get("authorization"))
    recorder = runtime.current.metrics
    if recorder is not None:
        recorder.fold()  # this worker's series are fresh; the others' are at most 1 s old
    # Reading every worker's files takes a few ms: not on the loop that serves requests.
    body = await asyncio.to_thread(exposition.render)
    return Response(body, media_type=exposition.MEDIA_TYPE)


routes = [Route("/metrics", metrics, methods=["GET"])]
