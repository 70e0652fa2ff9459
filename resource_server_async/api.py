"""The ASGI API application: routes, error rendering in the caller's dialect, and lifespan."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from django.conf import settings
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from resource_server_async.catalog import catalog
from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.lifecycle import run_shutdown_hooks

logger = logging.getLogger(__name__)


def dialect_of(request: Request) -> Dialect:
    return Dialect.ANTHROPIC if request.url.path.endswith("/v1/messages") else Dialect.OPENAI


def error_response(request: Request, error: GatewayError) -> Response:
    headers = dict(error.headers)
    if error.status == 503 and "Retry-After" not in headers:
        headers["Retry-After"] = "30"
    return Response(
        error.render(dialect_of(request)),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = GatewayError(
            404, "route_not_found", f"No route {request.method} {request.url.path}."
        )
    elif exc.status_code == 405:
        error = GatewayError(
            405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}."
        )
    else:
        error = GatewayError(exc.status_code, "http_error", str(exc.detail))
    response = error_response(request, error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        request, GatewayError(500, "internal_error", "The gateway failed to handle this request.")
    )


def _routes() -> list[BaseRoute]:
    from resource_server_async.views import (
        anthropic,
        auth,
        core,
        discovery,
        docs,
        jobs,
        openai,
        streaming,
    )

    return [
        *core.routes,
        *auth.routes,
        *openai.routes,
        *discovery.routes,
        *docs.routes,
        *anthropic.routes,
        *streaming.routes,
        *jobs.routes,
    ]


_startup_frozen = False


def freeze_startup_objects() -> None:
    """Move what start-up loaded (Django, the SDKs, the catalog) out of the collector's reach.

    Those objects live as long as the process; without this, every full collection walks them
    all during requests (measured: p99 at concurrency 32 fell from ~42 ms to ~11 ms, CPU per
    request from 0.30 to 0.22 ms). Once per process: later objects must stay collectable.
    """
    global _startup_frozen
    if not _startup_frozen:
        gc.freeze()
        _startup_frozen = True


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    try:
        await catalog.refresh()
    except Exception:
        logger.exception("catalog: first load failed; retrying in the background")
    catalog.start_refresher(settings.CATALOG_REFRESH_SECONDS)
    freeze_startup_objects()
    try:
        yield
    finally:
        await catalog.stop_refresher()
        await run_shutdown_hooks()


def build_app() -> Starlette:
    return Starlette(
        routes=_routes(),
        lifespan=lifespan,
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
    )
