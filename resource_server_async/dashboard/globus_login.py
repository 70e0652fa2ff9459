"""Globus sign-in for operators: the authorization-code flow with the gateway's confidential
client (GLOBUS_APPLICATION_ID/SECRET), admitted when the user is an active member of one of
DASHBOARD_OPERATOR_GROUPS. Blocking SDK calls: Django runs these views in a thread."""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass

import globus_sdk
from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.http import HttpRequest
from django.urls import reverse
from globus_sdk.scopes import GroupsScopes

from resource_server_async.auth.globus_api import no_retries
from resource_server_async.dashboard.access import SIGNED_IN_BY

logger = logging.getLogger(__name__)

_STATE = "dashboard_globus_state"
_NEXT = "dashboard_globus_next"
_GROUPS_SCOPE = str(GroupsScopes.view_my_groups_and_memberships)
_SCOPES = ["openid", "profile", "email", _GROUPS_SCOPE]
_BACKEND = "resource_server_async.login_throttle.ThrottledModelBackend"


class SignInRefused(Exception):
    """The Globus sign-in did not make an operator; the message is shown on the sign-in page."""


@dataclass(frozen=True)
class GlobusUser:
    username: str
    identity_id: str
    groups: frozenset[str]


def configured() -> bool:
    return bool(
        settings.GLOBUS_APPLICATION_ID
        and settings.GLOBUS_APPLICATION_SECRET
        and settings.DASHBOARD_OPERATOR_GROUPS
    )


def _client(request: HttpRequest) -> globus_sdk.ConfidentialAppAuthClient:
    client = globus_sdk.ConfidentialAppAuthClient(
        settings.GLOBUS_APPLICATION_ID,
        settings.GLOBUS_APPLICATION_SECRET,
        retry_config=no_retries(),
    )
    redirect = request.build_absolute_uri(reverse("dashboard:globus_callback"))
    client.oauth2_start_flow(redirect, requested_scopes=_SCOPES)
    return client


def authorize_url(request: HttpRequest, next_path: str) -> str:
    """Where the Globus button sends the browser; the state ties the answer to this session."""
    state = secrets.token_urlsafe(32)
    request.session[_STATE] = state
    request.session[_NEXT] = next_path
    return str(_client(request).oauth2_get_authorize_url(query_params={"state": state}))


def _user_of(client: globus_sdk.ConfidentialAppAuthClient, code: str) -> GlobusUser:
    try:
        tokens = client.oauth2_exchange_code_for_tokens(code)
        auth_token = tokens.by_resource_server["auth.globus.org"]["access_token"]
        groups_token = tokens.by_resource_server["groups.api.globus.org"]["access_token"]
        who = client.oauth2_token_introspect(auth_token)
        groups = globus_sdk.GroupsClient(
            authorizer=globus_sdk.AccessTokenAuthorizer(groups_token), retry_config=no_retries()
        ).get_my_groups(statuses="active")
    except KeyError as exc:
        raise SignInRefused(f"Globus did not grant the {exc.args[0]} scope") from None
    except globus_sdk.GlobusError as exc:
        logger.warning("dashboard: Globus sign-in failed: %s", exc)
        raise SignInRefused("Globus could not complete the sign-in; try again") from None
    if not who.get("active") or not who.get("username"):
        raise SignInRefused("Globus did not confirm who signed in")
    return GlobusUser(
        str(who["username"]), str(who.get("sub", "")), frozenset(str(g["id"]) for g in groups)
    )


def finish(request: HttpRequest) -> str:
    """Complete the flow from Globus's redirect: sign the operator in; the path to go on to."""
    expected = request.session.pop(_STATE, "")
    next_path = request.session.pop(_NEXT, "") or reverse("dashboard:overview")
    state = request.GET.get("state", "")
    if not expected or not hmac.compare_digest(expected, state):
        raise SignInRefused("the sign-in was not started here (or was started twice); try again")
    if error := request.GET.get("error"):
        raise SignInRefused(f"Globus refused the sign-in: {error}")
    code = request.GET.get("code", "")
    if not code:
        raise SignInRefused("Globus sent no authorization code")
    user = _user_of(_client(request), code)
    if not user.groups & set(settings.DASHBOARD_OPERATOR_GROUPS):
        raise SignInRefused(f"{user.username} is not in an operator group")
    # A Django user so that sessions and the admin's history work; it has no password, and
    # only a Globus sign-in (group checked each time) opens the dashboard for it.
    account, created = get_user_model().objects.get_or_create(username=f"globus:{user.username}")
    if created:
        account.set_unusable_password()
        account.save(update_fields=["password"])
    login(request, account, backend=_BACKEND)
    request.session[SIGNED_IN_BY] = "globus"
    request.session.set_expiry(settings.DASHBOARD_GLOBUS_SESSION_SECONDS)
    return str(next_path)
