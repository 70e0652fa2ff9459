"""/resource_server/v1/keys: a signed-in researcher creates, lists and revokes personal API keys.

Only a Globus login may manage keys: a personal key cannot mint or revoke keys (a leaked key
must not be able to outlive its own expiry by making more), nor can an operator key or a
service account (they have no person behind them to act as).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.routing import Route

from resource_server_async import runtime
from resource_server_async.api.http import JSONResponse, read_json_object
from resource_server_async.auth.authenticate import authenticate, credential
from resource_server_async.auth.principal import Principal
from resource_server_async.batches.database import in_thread
from resource_server_async.errors import GatewayError

logger = logging.getLogger(__name__)

_BODY_LIMIT = 16 * 1024


async def _signed_in(request: Request) -> Principal:
    principal = await authenticate(request)
    if principal.kind != "user" or principal.key_id is not None:
        raise GatewayError(
            403,
            "globus_login_required",
            "Personal API keys are managed with a Globus login, not with an API key: run "
            "`igw login`, then `igw keys ...` (or send a Globus access token).",
        )
    return principal


async def create_key(request: Request) -> JSONResponse:
    # Imported on use: the Globus SDK is loaded only where Globus is configured (runtime.py).
    from resource_server_async.auth import globus_api, key_owners, personal_keys

    owner = await _signed_in(request)
    body, _ = await read_json_object(request, _BODY_LIMIT)
    wanted = personal_keys.key_request(body)
    globus = runtime.current.globus
    assert globus is not None  # a Globus principal implies a Globus validator
    try:
        refresh = await globus.in_thread(
            globus_api.groups_refresh_token, key_owners.globus_settings(), credential(request)
        )
    except globus_api.GlobusOutage:
        raise GatewayError(
            503,
            "globus_unavailable",
            "Globus could not be reached to set up the key's owner check; retry in a moment.",
            headers={"Retry-After": "5"},
        ) from None
    try:
        created = await in_thread(personal_keys.create, owner, wanted, key_owners.seal(refresh))
    except GatewayError:
        await _revoke_at_globus(refresh)
        raise
    return JSONResponse(created, status_code=201)


async def list_keys(request: Request) -> JSONResponse:
    from resource_server_async.auth import personal_keys

    owner = await _signed_in(request)
    keys = await in_thread(personal_keys.owned, owner.id)
    return JSONResponse({"object": "list", "data": keys})


async def revoke_key(request: Request) -> JSONResponse:
    from resource_server_async.auth import key_owners, personal_keys

    owner = await _signed_in(request)
    raw = request.path_params["key_id"]
    if not raw.isdigit():
        raise GatewayError(400, "invalid_request", f"{raw!r} is not a key id.", param="key_id")
    revoked = await in_thread(personal_keys.revoke, owner.id, int(raw))
    if revoked is None:
        raise GatewayError(404, "key_not_found", f"You have no personal key with id {raw}.")
    described, key_hash, sealed = revoked
    # Refused at once by this worker; other workers within API_KEY_CACHE_SECONDS.
    runtime.current.api_keys.forget(key_hash)
    token = key_owners.unseal(sealed)
    if token:
        await _revoke_at_globus(token)
    return JSONResponse(described)


async def _revoke_at_globus(token: str) -> None:
    """Best effort: the row no longer holds the grant either way."""
    from resource_server_async.auth import globus_api, key_owners

    globus = runtime.current.globus
    if globus is None:
        return
    try:
        await globus.in_thread(globus_api.revoke, key_owners.globus_settings(), token)
    except (globus_api.GlobusOutage, GatewayError) as exc:
        logger.warning("personal keys: could not revoke a Groups grant at Globus: %s", exc)


routes = [
    Route("/resource_server/v1/keys", create_key, methods=["POST"]),
    Route("/resource_server/v1/keys", list_keys, methods=["GET"]),
    Route("/resource_server/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
]
