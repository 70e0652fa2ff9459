"""Routes of the auth API family: who the gateway thinks the caller is."""

from __future__ import annotations

from django.conf import settings
from starlette.requests import Request
from starlette.routing import Route

from resource_server_async.api.http import JSONResponse
from resource_server_async.auth.authenticate import authenticate


async def whoami(request: Request) -> JSONResponse:
    """The authenticated principal: identity, identity-provider domain and groups."""
    principal = await authenticate(request)
    return JSONResponse(principal.as_dict())


def gateway_scope() -> str:
    """The scope researchers' tokens are for (its Groups dependency is declared at Globus)."""
    return f"https://auth.globus.org/scopes/{settings.GLOBUS_APPLICATION_ID}/action_all"


async def auth_config(request: Request) -> JSONResponse:
    """Public: what a client (igw login) needs to log in for this gateway."""
    if not settings.GLOBUS_APPLICATION_ID:
        return JSONResponse({"globus": None})
    return JSONResponse(
        {
            "globus": {
                "client_id": settings.GLOBUS_CLI_CLIENT_ID or None,
                "resource_server": settings.GLOBUS_APPLICATION_ID,
                "scope": gateway_scope(),
                "required_idp_domains": sorted(settings.AUTHORIZED_IDP_DOMAINS),
                "required_policies": list(settings.GLOBUS_POLICIES),
            },
            "personal_keys": {
                "max_days": settings.PERSONAL_KEY_MAX_DAYS,
                "per_owner": settings.PERSONAL_KEYS_PER_OWNER,
            },
        }
    )


routes = [
    Route("/resource_server/whoami", whoami, methods=["GET"]),
    Route("/resource_server/v1/auth/config", auth_config, methods=["GET"]),
]
