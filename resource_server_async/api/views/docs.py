"""Public API documentation: the OpenAPI document and a browsable HTML page rendering it."""

from __future__ import annotations

from functools import cache

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from resource_server_async.api import docs_page
from resource_server_async.api.http import JSONResponse
from resource_server_async.api.openapi import openapi_document

SPEC_PATH = "/resource_server/openapi.json"


@cache
def _spec_bytes() -> bytes:
    return orjson.dumps(openapi_document())


@cache
def _page() -> str:
    return docs_page.render(openapi_document(), SPEC_PATH)


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(_spec_bytes())


async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(_page(), headers=docs_page.HEADERS)


routes = [
    Route(SPEC_PATH, openapi_json, methods=["GET"]),
    Route("/resource_server/docs", docs, methods=["GET"]),
]
