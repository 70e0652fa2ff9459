"""Routes of the auth API family: who the gateway thinks the caller is."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from resource_server_async.api.http import JSONResponse
from resource_server_async.auth.authenticate import authenticate


async def whoami(request: Request) -> JSONResponse:
    """The authenticated principal: identity, identity-provider domain and groups."""
    principal = await authenticate(request)
    return JSONResponse(principal.as_dict())


routes = [Route("/resource_server/whoami", whoami, methods=["GET"])]
