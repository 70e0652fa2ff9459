"""Globus login for a gateway (native app, PKCE), the stored refresh token, refresh and logout.

The gateway tells igw which Globus client to log in with and which scope to ask for
(GET /resource_server/v1/auth/config); the gateway's scope carries its Groups dependency, so one
consent covers both. With a browser at hand the login opens it and listens on localhost; on an
SSH session (--no-browser) it prints the URL and reads the code Globus shows back.
"""

from __future__ import annotations

import os
import time
from typing import Any

import globus_sdk
from globus_sdk.gare import GlobusAuthorizationParameters
from globus_sdk.login_flows import (
    CommandLineLoginFlowManager,
    LocalServerLoginFlowManager,
    LoginFlowManager,
)

from igw import errors, state
from igw.errors import CliError
from igw.gateway import Gateway

# A token this close to its expiry is refreshed first (clock skew, a slow request).
REFRESH_MARGIN = 60.0


def discover(url: str) -> dict[str, Any]:
    """The gateway's login parameters; a gateway without Globus cannot be logged in to."""
    config = Gateway(url).json("GET", "/resource_server/v1/auth/config")
    globus = config.get("globus") if isinstance(config, dict) else None
    if not isinstance(globus, dict):
        raise CliError(
            f"The gateway at {url} does not accept Globus logins; use an API key from its "
            "operators (export IGW_API_KEY=igw_...).",
            errors.FAILED,
        )
    return globus


def _flow(client: globus_sdk.NativeAppAuthClient, no_browser: bool) -> LoginFlowManager:
    prefill = f"igw on {os.uname().nodename}"
    if no_browser:
        return CommandLineLoginFlowManager(
            client, request_refresh_tokens=True, native_prefill_named_grant=prefill
        )
    return LocalServerLoginFlowManager(
        client, request_refresh_tokens=True, native_prefill_named_grant=prefill
    )


def wants_no_browser() -> bool:
    """An SSH session without a display cannot open a browser here."""
    return bool(os.environ.get("SSH_CONNECTION")) and not os.environ.get("DISPLAY")


def login(url: str, no_browser: bool, client_id: str = "") -> dict[str, Any]:
    globus = discover(url)
    client_id = (
        client_id or os.environ.get("IGW_CLIENT_ID", "") or str(globus.get("client_id") or "")
    )
    if not client_id:
        raise CliError(
            "The gateway names no Globus client for igw (its operator sets "
            "GLOBUS_CLI_CLIENT_ID); pass --client-id with a native app's client id.",
            errors.USAGE,
        )
    client = globus_sdk.NativeAppAuthClient(client_id)
    # What the gateway always requires, and what its last 401 asked for (a GARE), if any.
    asked = state.take_requirements(url)
    parameters = GlobusAuthorizationParameters(
        required_scopes=[globus["scope"]],
        session_message=asked.get("session_message"),
        session_required_identities=asked.get("session_required_identities"),
        session_required_single_domain=asked.get("session_required_single_domain")
        or globus.get("required_idp_domains")
        or None,
        session_required_policies=asked.get("session_required_policies")
        or globus.get("required_policies")
        or None,
        session_required_mfa=asked.get("session_required_mfa"),
        prompt="login" if asked else None,
    )
    try:
        try:
            tokens = _flow(client, no_browser).run_login_flow(parameters)
        except globus_sdk.login_flows.LocalServerEnvironmentalLoginError:
            # No browser could be opened (a server without a desktop): paste the code instead.
            tokens = _flow(client, True).run_login_flow(parameters)
    except globus_sdk.login_flows.CommandLineLoginFlowEOFError:
        raise CliError(
            "No authorization code was entered; the login was cancelled.", errors.USAGE
        ) from None
    except globus_sdk.GlobusAPIError as exc:
        raise CliError(
            f"Globus refused the login (HTTP {exc.http_status}, {exc.code}).", errors.LOGIN_NEEDED
        ) from None
    record = _record(tokens, globus["resource_server"], client_id)
    saved = state.load()
    saved["gateway"] = url
    saved.setdefault("logins", {})[url] = record
    state.save(saved)
    return record


def _record(
    tokens: globus_sdk.OAuthTokenResponse, resource_server: str, client_id: str
) -> dict[str, Any]:
    data = tokens.by_resource_server.get(resource_server)
    if not data:
        raise CliError(
            "Globus returned no token for the gateway; run `igw login` again.", errors.LOGIN_NEEDED
        )
    return {
        "client_id": client_id,
        "resource_server": resource_server,
        "access_token": data["access_token"],
        "refresh_token": data.get("refresh_token"),
        "expires_at": data["expires_at_seconds"],
    }


def access_token(url: str, force_refresh: bool = False) -> str:
    """A valid access token for the gateway, refreshed (and stored) when near its expiry."""
    saved = state.load()
    record = saved.get("logins", {}).get(url)
    if not record:
        raise CliError(
            f"You are not logged in to {url}. Run `igw login --gateway {url}`.", errors.LOGIN_NEEDED
        )
    if not force_refresh and record["expires_at"] - REFRESH_MARGIN > time.time():
        return str(record["access_token"])
    if not record.get("refresh_token"):
        raise CliError("Your login has expired. Run `igw login`.", errors.LOGIN_NEEDED)
    client = globus_sdk.NativeAppAuthClient(record["client_id"])
    try:
        tokens = client.oauth2_refresh_token(record["refresh_token"])
    except globus_sdk.GlobusAPIError as exc:
        if exc.http_status >= 500:
            raise CliError(
                "Globus cannot be reached to refresh your login; retry later.", errors.UNAVAILABLE
            ) from None
        raise CliError(
            "Your login has expired or was revoked at Globus. Run `igw login`.", errors.LOGIN_NEEDED
        ) from None
    except globus_sdk.NetworkError:
        raise CliError(
            "Globus cannot be reached to refresh your login; retry later.", errors.UNAVAILABLE
        ) from None
    fresh = _record(tokens, record["resource_server"], record["client_id"])
    # Globus does not rotate refresh tokens unless asked to: keep the old one if none came back.
    fresh["refresh_token"] = fresh["refresh_token"] or record["refresh_token"]
    saved["logins"][url] = fresh
    state.save(saved)
    return str(fresh["access_token"])


def logout(url: str) -> tuple[bool, bool]:
    """Revoke this gateway's tokens at Globus and forget them: (was logged in, all revoked)."""
    saved = state.load()
    record = saved.get("logins", {}).pop(url, None)
    if record is None:
        return False, True
    client = globus_sdk.NativeAppAuthClient(record["client_id"])
    revoked = True
    for name in ("refresh_token", "access_token"):
        token = record.get(name)
        if not token:
            continue
        try:
            client.oauth2_revoke_token(token)
        except (globus_sdk.GlobusAPIError, globus_sdk.NetworkError):
            revoked = False  # forgotten here regardless
    state.save(saved)
    return True, revoked
