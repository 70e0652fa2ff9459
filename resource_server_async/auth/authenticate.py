"""Step 2 of a request: turn the credential in the headers into a Principal (or 401/503)."""

from __future__ import annotations

from starlette.requests import Request

from resource_server_async import runtime
from resource_server_async.auth.api_keys import is_api_key
from resource_server_async.auth.principal import Principal
from resource_server_async.errors import GatewayError

# Globus access tokens and gateway keys are well under this.
MAX_CREDENTIAL_LENGTH = 4096

_MISSING = (
    "No credential was sent. Send 'Authorization: Bearer <token>' or 'x-api-key: <token>' "
    "with a Globus access token or a gateway API key."
)


def credential(request: Request) -> str:
    """The bearer token, or else the x-api-key header (what the Anthropic client sends, and
    what agents configured for Anthropic send to every route)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise GatewayError(
                401,
                "invalid_authorization_header",
                "The Authorization header must be 'Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return token
    token = (request.headers.get("x-api-key") or "").strip()
    if token:
        return token
    raise GatewayError(401, "missing_credentials", _MISSING, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request) -> Principal:
    """The caller as a Principal; 401 for a bad credential, 503 when Globus cannot answer."""
    token = credential(request)
    if len(token) > MAX_CREDENTIAL_LENGTH or not token.isascii():
        # Real tokens are short ASCII; anything else is refused before hashing or a network call.
        raise GatewayError(
            401,
            "malformed_credential",
            "The credential is not a Globus access token or a gateway API key.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if is_api_key(token):
        return await runtime.current.api_keys.validate(token)
    globus = runtime.current.globus
    if globus is None:
        raise GatewayError(
            401,
            "globus_not_configured",
            "This gateway does not accept Globus tokens (GLOBUS_APPLICATION_ID is not set); "
            "use a gateway API key.",
        )
    return await globus.validate(token)
