"""Globus Auth access tokens: introspection, session, policy and group checks, cached."""

from __future__ import annotations

from django.conf import settings

from resource_server_async.auth.principal import Principal
from resource_server_async.errors import GatewayError


class GlobusTokenValidator:
    async def validate(self, token: str) -> Principal:
        if not settings.GLOBUS_APPLICATION_ID:
            raise GatewayError(
                401,
                "globus_not_configured",
                "This gateway does not accept Globus tokens (GLOBUS_APPLICATION_ID is not set); "
                "use a gateway API key.",
            )
        raise GatewayError(503, "globus_unavailable", "Globus token validation is not available.")


globus_validator = GlobusTokenValidator()
