"""The blocking Globus calls (introspection, Groups membership); run them in worker threads only."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import globus_sdk
from globus_sdk.config import get_service_url
from globus_sdk.scopes import GroupsScopes
from globus_sdk.transport import RequestsTransport, RetryConfig

from resource_server_async.errors import GatewayError

_GROUPS_RESOURCE_SERVER = "groups.api.globus.org"
_GROUPS_SCOPE = str(GroupsScopes.view_my_groups_and_memberships)


class GlobusOutage(Exception):
    """Globus could not answer (5xx, 429, timeout, connection error): not the caller's fault."""


@dataclass(frozen=True, slots=True)
class GlobusSettings:
    client_id: str
    client_secret: str
    http_timeout: float
    policies: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> tuple[str, ...]:
        # Thread-local clients are rebuilt when any of this changes; the secret only as a hash.
        return (
            self.client_id,
            hashlib.sha256(self.client_secret.encode()).hexdigest(),
            str(self.http_timeout),
            get_service_url("auth"),
            get_service_url("groups"),
        )


class _ThreadClients(threading.local):
    fingerprint: tuple[str, ...] = ()
    transport: RequestsTransport | None = None
    auth: globus_sdk.ConfidentialAppAuthClient | None = None


_clients = _ThreadClients()


def no_retries() -> RetryConfig:
    # The gateway answers 503 at once and the caller retries; SDK back-off would hold a thread
    # for seconds past the deadline.
    return RetryConfig(max_retries=0)


def _auth_client(conf: GlobusSettings) -> globus_sdk.ConfidentialAppAuthClient:
    """One SDK client (and HTTP session) per worker thread: requests sessions are not shared."""
    if _clients.auth is None or _clients.fingerprint != conf.fingerprint:
        if _clients.transport is not None:
            _clients.transport.close()
        _clients.transport = RequestsTransport(http_timeout=conf.http_timeout)
        _clients.auth = globus_sdk.ConfidentialAppAuthClient(
            conf.client_id,
            conf.client_secret,
            transport=_clients.transport,
            retry_config=no_retries(),
        )
        _clients.fingerprint = conf.fingerprint
    return _clients.auth


def _is_outage(error: globus_sdk.GlobusAPIError) -> bool:
    return error.http_status >= 500 or error.http_status == 429


@contextlib.contextmanager
def _calling(
    step: str, refused: Callable[[globus_sdk.GlobusAPIError], GatewayError]
) -> Iterator[None]:
    """A Globus call named `step` in messages: Globus not answering (network, 5xx, 429) is a
    GlobusOutage; any other error answer, Globus refusing the call, is `refused(error)`."""
    try:
        yield
    except globus_sdk.NetworkError as exc:
        raise GlobusOutage(f"{step}: {type(exc).__name__}") from None
    except globus_sdk.GlobusAPIError as exc:
        if _is_outage(exc):
            raise GlobusOutage(f"{step}: HTTP {exc.http_status}") from None
        raise refused(exc) from None


def _introspection_refused(error: globus_sdk.GlobusAPIError) -> GatewayError:
    # Globus answers 200 {"active": false} for bad tokens; a 4xx here means it refused the
    # gateway itself (wrong client credentials, unknown policy id): an operator problem.
    return GatewayError(
        500,
        "globus_rejected_gateway",
        f"Globus Auth refused the gateway's token introspection (HTTP {error.http_status}, "
        f"{error.code}). The gateway operator must check GLOBUS_APPLICATION_ID, "
        "GLOBUS_APPLICATION_SECRET and GLOBUS_POLICIES.",
    )


def introspect(conf: GlobusSettings, token: str) -> dict[str, Any]:
    """Globus Auth's introspection of `token`, with session, identities and policy evaluations."""
    form: dict[str, Any] = {"token": token, "include": "session_info,identity_set_detail"}
    if conf.policies:
        form["authentication_policies"] = ",".join(conf.policies)
    with _calling("introspection", _introspection_refused):
        response = _auth_client(conf).post(
            "/v2/oauth2/token/introspect", data=form, encoding="form"
        )
    data = response.data
    if not isinstance(data, dict):
        raise GlobusOutage("introspection: the answer is not a JSON object")
    return data


def _groups_refused(status: int, step: str) -> GatewayError:
    return GatewayError(
        401,
        "groups_consent_required",
        f"Globus refused to let the gateway read your group memberships ({step}, HTTP {status}). "
        "Log out of Globus and log in again, consenting to the gateway's scope (which includes "
        "viewing your groups), then retry with the new access token.",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def my_group_ids(conf: GlobusSettings, token: str) -> list[str]:
    """Ids of the Globus groups in which the token's identity is an active member."""
    with _calling(
        "dependent token grant",
        lambda exc: _groups_refused(exc.http_status, "dependent token grant"),
    ):
        tokens = _auth_client(conf).oauth2_get_dependent_tokens(token, scope=_GROUPS_SCOPE)
    groups_token = tokens.by_resource_server.get(_GROUPS_RESOURCE_SERVER, {}).get("access_token")
    if not groups_token:
        raise _groups_refused(200, "no Groups token in the dependent token grant")
    return _active_group_ids(
        groups_token, lambda exc: _groups_refused(exc.http_status, "Groups API")
    )


def _active_group_ids(
    groups_token: str, refused: Callable[[globus_sdk.GlobusAPIError], GatewayError]
) -> list[str]:
    groups = globus_sdk.GroupsClient(
        authorizer=globus_sdk.AccessTokenAuthorizer(groups_token),
        transport=_clients.transport,
        retry_config=no_retries(),
    )
    with _calling("my_groups", refused):
        listing = groups.get_my_groups(statuses="active")
    return [str(group["id"]) for group in listing if _active_member(group)]


# --- personal keys: the owner's memberships without the owner's token ----------------------


def _offline_refused(error: globus_sdk.GlobusAPIError) -> GatewayError:
    return GatewayError(
        401,
        "groups_consent_required",
        "Globus would not let the gateway keep reading your group memberships (needed for a "
        f"personal API key; HTTP {error.http_status}). Log in again (igw login) and consent, "
        "then retry.",
    )


def groups_refresh_token(conf: GlobusSettings, token: str) -> str:
    """A refresh token for the Groups scope, dependent on the user's `token` (offline access):
    what lets the gateway re-read a personal key owner's memberships later."""
    with _calling("dependent token grant (offline)", _offline_refused):
        tokens = _auth_client(conf).oauth2_get_dependent_tokens(
            token, scope=_GROUPS_SCOPE, refresh_tokens=True
        )
    refresh = tokens.by_resource_server.get(_GROUPS_RESOURCE_SERVER, {}).get("refresh_token")
    if not refresh:
        raise GatewayError(
            500,
            "personal_keys_not_configured",
            "Globus granted no Groups refresh token, so the gateway could not re-check the "
            "owner of a personal key. The gateway operator must declare the Groups dependency "
            "of the gateway's scope with requires_refresh_token=true (docs/auth.md).",
        )
    return str(refresh)


def _owner_refused(error: globus_sdk.GlobusAPIError) -> GatewayError:
    return GatewayError(
        401,
        "key_owner_consent_revoked",
        "The owner of this personal API key has withdrawn the gateway's access to their Globus "
        f"groups, or logged out (HTTP {error.http_status}); the key no longer works. Log in "
        "again (igw login) and create a new key (igw keys create).",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def owner_group_ids(conf: GlobusSettings, refresh_token: str) -> list[str]:
    """The active groups of a personal key's owner, read with the stored Groups refresh token."""
    with _calling("Groups token refresh", _owner_refused):
        tokens = _auth_client(conf).oauth2_refresh_token(refresh_token)
    groups_token = tokens.by_resource_server.get(_GROUPS_RESOURCE_SERVER, {}).get("access_token")
    if not groups_token:
        raise GlobusOutage("Groups token refresh: no Groups access token in the answer")
    return _active_group_ids(str(groups_token), _owner_refused)


def revoke(conf: GlobusSettings, token: str) -> None:
    """Revoke a token the gateway holds (a revoked key's Groups refresh token)."""
    with _calling("token revocation", _introspection_refused):
        _auth_client(conf).oauth2_revoke_token(token)


def _active_member(group: dict[str, Any]) -> bool:
    # `statuses=active` already filters; a listing without memberships is trusted as is.
    memberships = group.get("my_memberships")
    if not memberships:
        return "id" in group
    return "id" in group and any(m.get("status") == "active" for m in memberships)
