"""Realistic Globus Auth introspection and Groups bodies, shaped as Globus answers them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

# The gateway's confidential client (its resource server), as an operator registers it.
GATEWAY_CLIENT_ID = "5a1f6f2e-3c1b-4b8e-9a55-4f3a1c0d2e71"
GATEWAY_CLIENT_SECRET = "test-only-secret-not-a-real-one"
# The CLI a researcher logs in with (the token's `client_id`); not the audience.
NATIVE_APP_CLIENT_ID = "58fdd3bc-e1c3-4ce5-80ea-8d6b87cfb944"
GATEWAY_SCOPE = f"https://auth.globus.org/scopes/{GATEWAY_CLIENT_ID}/action_all"

GATEWAY_GROUP = "0a8a4b47-96b6-11ef-a3b4-0affd3f4a1c5"  # GLOBUS_GROUPS
ARGONNE_GROUP = "2d6a3e10-96b6-11ef-a3b4-0affd3f4a1c5"  # AUTHORIZED_GROUPS_PER_IDP for anl.gov
OTHER_GROUP = "6f1b2c3d-96b6-11ef-a3b4-0affd3f4a1c5"
HIGH_ASSURANCE_POLICY = "8f2e5a6b-0c7d-4e1f-9a2b-3c4d5e6f7a8b"

ANL_IDP = "9a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d"
GLOBUSID_IDP = "41143743-f3c8-4d60-bbdb-eeecaba85bd9"
GMAIL_IDP = "b6d8e0f2-1a3c-4e5f-8a7b-9c0d1e2f3a4b"


@dataclass(frozen=True)
class Identity:
    username: str
    name: str
    idp: str
    idp_name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def detail(self) -> dict[str, Any]:
        return {
            "sub": self.id,
            "username": self.username,
            "name": self.name,
            "email": self.username,
            "identity_provider": self.idp,
            "identity_provider_display_name": self.idp_name,
            "organization": self.idp_name,
            "status": "used",
            "identity_type": "login",
            "last_authentication": int(time.time()) - 600,
        }


def argonne_user() -> Identity:
    return Identity("jdoe@anl.gov", "Jane Doe", ANL_IDP, "Argonne National Laboratory")


def globusid_identity() -> Identity:
    return Identity("jdoe@globusid.org", "Jane Doe", GLOBUSID_IDP, "Globus ID")


def gmail_identity() -> Identity:
    return Identity("jane.doe@gmail.com", "Jane Doe", GMAIL_IDP, "Google")


def introspection(
    primary: Identity,
    *,
    linked: tuple[Identity, ...] = (),
    session: tuple[Identity, ...] | None = None,
    active: bool = True,
    expires_in: float = 3600,
    audience: tuple[str, ...] = (GATEWAY_CLIENT_ID,),
    policies: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """An answer of POST /v2/oauth2/token/introspect with include=session_info,identity_set_detail.

    `session` lists the identities the user authenticated with in this session (default: the
    primary identity); `policies` the evaluations of the requested authentication policies.
    """
    if not active:
        return {"active": False}
    now = int(time.time())
    identities = (primary, *linked)
    in_session = (primary,) if session is None else session
    body: dict[str, Any] = {
        "active": True,
        "token_type": "Bearer",
        "scope": GATEWAY_SCOPE,
        "client_id": NATIVE_APP_CLIENT_ID,
        "username": primary.username,
        "name": primary.name,
        "email": primary.username,
        "sub": primary.id,
        "exp": int(now + expires_in),
        "iat": now - 60,
        "nbf": now - 60,
        "aud": list(audience),
        "iss": "https://auth.globus.org",
        "identity_set": [i.id for i in identities],
        "session_info": {
            "session_id": str(uuid.uuid4()),
            "authentications": {
                i.id: {
                    "acr": None,
                    "amr": None,
                    "auth_time": now - 600,
                    "idp": i.idp,
                    "custom_claims": {},
                }
                for i in in_session
            },
        },
        "identity_set_detail": [i.detail() for i in identities],
    }
    if policies is not None:
        body["policy_evaluations"] = {
            policy_id: {"evaluation": passed, "required_mfa": False}
            for policy_id, passed in policies.items()
        }
    return body


def service_account_introspection(client_id: str, expires_in: float = 3600) -> dict[str, Any]:
    """A client-credentials token of a service account: no session, no linked identities."""
    now = int(time.time())
    username = f"{client_id}@clients.auth.globus.org"
    return {
        "active": True,
        "token_type": "Bearer",
        "scope": GATEWAY_SCOPE,
        "client_id": client_id,
        "username": username,
        "name": "inference-batch-runner",
        "email": None,
        "sub": client_id,
        "exp": int(now + expires_in),
        "iat": now - 60,
        "nbf": now - 60,
        "aud": [GATEWAY_CLIENT_ID],
        "iss": "https://auth.globus.org",
        "identity_set": [client_id],
        "session_info": {"session_id": None, "authentications": {}},
        "identity_set_detail": [
            {
                "sub": client_id,
                "username": username,
                "name": "inference-batch-runner",
                "email": None,
                "identity_provider": "client_identity_provider",
                "identity_provider_display_name": "Globus Auth",
                "organization": None,
                "status": "used",
                "identity_type": "login",
            }
        ],
    }


def dependent_tokens(groups_token: str) -> list[dict[str, Any]]:
    """An answer of the dependent token grant for the Groups scope."""
    return [
        {
            "scope": "urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships",
            "access_token": groups_token,
            "token_type": "bearer",
            "expires_in": 172800,
            "resource_server": "groups.api.globus.org",
        }
    ]


def my_groups(identity: Identity, group_ids: list[str]) -> list[dict[str, Any]]:
    """An answer of GET /v2/groups/my_groups?statuses=active."""
    return [
        {
            "name": f"group {gid[:8]}",
            "id": gid,
            "parent_id": None,
            "group_type": "regular",
            "enforce_session": False,
            "session_limit": 28800,
            "session_timeouts": {},
            "my_memberships": [
                {
                    "group_id": gid,
                    "identity_id": identity.id,
                    "username": identity.username,
                    "role": "member",
                    "status": "active",
                }
            ],
            "policies": {
                "group_visibility": "private",
                "group_members_visibility": "managers",
            },
        }
        for gid in group_ids
    ]
