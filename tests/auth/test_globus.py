"""Globus token validation with the real globus-sdk against registered Globus responses."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import requests
import responses
from globus_sdk.gare import to_gare
from globus_sdk.testing import RegisteredResponse
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async.api.app import Dialect
from resource_server_async.auth.authenticate import authenticate
from resource_server_async.auth.globus import GlobusTokenValidator
from resource_server_async.errors import GatewayError
from resource_server_async.runtime import Runtime, installed
from tests.auth import globus_data as gd
from tests.auth.conftest import (
    SERVICE_CLIENT_ID,
    calls_to,
    form_of,
    register_token,
)
from tests.auth.test_api_keys import request

pytestmark = pytest.mark.usefixtures("globus_settings")

INTROSPECT = "/v2/oauth2/token/introspect"
MEMBER = [gd.GATEWAY_GROUP]


async def denial(validator: GlobusTokenValidator, token: str) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await validator.validate(token)
    return caught.value


def openai_body(error: GatewayError) -> dict[str, Any]:
    return error.body(Dialect.OPENAI)


async def test_active_token_of_an_allowed_identity_is_the_principal(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    user = gd.argonne_user()
    register_token(globus_http, token, gd.introspection(user), [*MEMBER, gd.OTHER_GROUP], user)

    principal = await validator.validate(token)

    assert principal.as_dict() == {
        "id": user.id,
        "username": "jdoe@anl.gov",
        "name": "Jane Doe",
        "kind": "user",
        "idp_domain": "anl.gov",
        "groups": sorted([gd.GATEWAY_GROUP, gd.OTHER_GROUP]),
        "identity_source": "Argonne National Laboratory",
    }
    introspect = next(c.request for c in globus_http.calls if c.request.url.endswith(INTROSPECT))
    assert form_of(introspect) == {"token": token, "include": "session_info,identity_set_detail"}
    # The gateway authenticates as its own confidential client (HTTP Basic), never as the user.
    assert introspect.headers["Authorization"].startswith("Basic ")
    groups_call = next(
        c.request for c in globus_http.calls if "/v2/groups/my_groups" in c.request.url
    )
    assert "statuses=active" in groups_call.url


async def test_inactive_token_is_401(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    register_token(globus_http, token, gd.introspection(gd.argonne_user(), active=False), MEMBER)

    error = await denial(validator, token)

    assert error.status == 401
    assert openai_body(error) == {
        "error": {
            "message": "The access token is not active (it is unknown, revoked or expired). "
            "Get a new Globus access token for this gateway and retry.",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_token",
        }
    }
    assert error.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    # An inactive token is not exchanged for a Groups token.
    assert calls_to(globus_http, "/v2/oauth2/token") == 0


async def test_expired_token_is_401(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    body = gd.introspection(gd.argonne_user(), expires_in=-5)
    register_token(globus_http, token, body, MEMBER)

    error = await denial(validator, token)

    assert (error.status, error.code) == (401, "token_expired")
    assert openai_body(error)["error"]["message"] == (
        "The access token has expired. Refresh it (or log in again) and retry."
    )


async def test_token_for_another_resource_server_is_401(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    body = gd.introspection(gd.argonne_user(), audience=("transfer.api.globus.org",))
    register_token(globus_http, token, body, MEMBER)

    error = await denial(validator, token)

    assert (error.status, error.code) == (401, "invalid_audience")
    assert "not issued for this gateway" in openai_body(error)["error"]["message"]


async def test_session_without_an_allowed_idp_is_401_with_authorization_requirements(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    argonne, gmail = gd.argonne_user(), gd.gmail_identity()
    # The Argonne identity is linked but the user logged in with Google in this session.
    body = gd.introspection(gmail, linked=(argonne,), session=(gmail,))
    register_token(globus_http, token, body, MEMBER)

    error = await denial(validator, token)
    body_out = openai_body(error)

    assert error.status == 401
    message = (
        "This gateway requires a login with an identity from anl.gov; your current Globus "
        "session has jane.doe@gmail.com. Log in again with an allowed identity (Globus clients "
        "can do this automatically from authorization_parameters)."
    )
    assert body_out == {
        "error": {
            "message": message,
            "type": "authentication_error",
            "param": None,
            "code": "session_idp_not_allowed",
        },
        "code": "AuthorizationRequired",
        "authorization_parameters": {
            "session_message": message,
            "session_required_single_domain": ["anl.gov"],
        },
    }
    gare = to_gare(body_out)
    assert gare is not None
    assert gare.authorization_parameters.session_required_single_domain == ["anl.gov"]


async def test_linked_identity_used_in_the_session_is_the_principal(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    argonne, globusid = gd.argonne_user(), gd.globusid_identity()
    body = gd.introspection(globusid, linked=(argonne,), session=(globusid, argonne))
    register_token(globus_http, token, body, MEMBER, globusid)

    principal = await validator.validate(token)

    assert (principal.id, principal.username, principal.idp_domain) == (
        argonne.id,
        "jdoe@anl.gov",
        "anl.gov",
    )


async def test_policy_evaluated_false_is_401_naming_the_policy(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    globus_settings: SettingsWrapper,
) -> None:
    globus_settings.GLOBUS_POLICIES = [gd.HIGH_ASSURANCE_POLICY]
    token = new_token()
    body = gd.introspection(gd.argonne_user(), policies={gd.HIGH_ASSURANCE_POLICY: False})
    register_token(globus_http, token, body, MEMBER)

    error = await denial(validator, token)
    body_out = openai_body(error)

    assert (error.status, error.code) == (401, "session_policy_failed")
    assert body_out["code"] == "AuthorizationRequired"
    assert body_out["authorization_parameters"]["session_required_policies"] == [
        gd.HIGH_ASSURANCE_POLICY
    ]
    assert body_out["authorization_parameters"]["session_required_single_domain"] == ["anl.gov"]
    assert "high-assurance" in body_out["error"]["message"]
    introspect = next(c.request for c in globus_http.calls if c.request.url.endswith(INTROSPECT))
    assert form_of(introspect)["authentication_policies"] == gd.HIGH_ASSURANCE_POLICY


async def test_policy_evaluated_true_passes(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    globus_settings: SettingsWrapper,
) -> None:
    globus_settings.GLOBUS_POLICIES = [gd.HIGH_ASSURANCE_POLICY]
    token = new_token()
    body = gd.introspection(gd.argonne_user(), policies={gd.HIGH_ASSURANCE_POLICY: True})
    register_token(globus_http, token, body, MEMBER)

    assert (await validator.validate(token)).username == "jdoe@anl.gov"


async def test_user_outside_the_required_groups_is_403(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    register_token(globus_http, token, gd.introspection(gd.argonne_user()), [gd.OTHER_GROUP])

    error = await denial(validator, token)

    assert error.status == 403
    assert openai_body(error) == {
        "error": {
            "message": "You are not a member of any Globus group this gateway requires. Ask "
            "the gateway operator which group to join, then retry.",
            "type": "permission_error",
            "param": None,
            "code": "not_in_required_group",
        }
    }


async def test_per_idp_group_requirement(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    globus_settings: SettingsWrapper,
) -> None:
    globus_settings.AUTHORIZED_GROUPS_PER_IDP = {"anl.gov": f"{gd.ARGONNE_GROUP},{gd.OTHER_GROUP}"}
    outside, inside = new_token(), new_token()
    register_token(globus_http, outside, gd.introspection(gd.argonne_user()), MEMBER)
    register_token(
        globus_http, inside, gd.introspection(gd.argonne_user()), [*MEMBER, gd.ARGONNE_GROUP]
    )

    error = await denial(validator, outside)
    assert (error.status, error.code) == (403, "not_in_idp_group")
    assert "anl.gov identity" in error.message
    assert gd.ARGONNE_GROUP in (await validator.validate(inside)).groups


async def test_allowed_service_account_skips_session_checks(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    globus_settings: SettingsWrapper,
) -> None:
    globus_settings.GLOBUS_POLICIES = [gd.HIGH_ASSURANCE_POLICY]
    token = new_token()
    body = gd.service_account_introspection(SERVICE_CLIENT_ID)
    register_token(globus_http, token, body, MEMBER)

    principal = await validator.validate(token)

    assert principal.kind == "service"
    assert principal.id == SERVICE_CLIENT_ID
    assert principal.username == f"{SERVICE_CLIENT_ID}@clients.auth.globus.org"
    assert principal.identity_source == "client_credentials"
    assert principal.groups == frozenset(MEMBER)


async def test_service_account_not_in_the_list_is_403(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    other_client = "0e9d8c7b-6a5f-4e3d-9c2b-1a0f9e8d7c6b"
    register_token(globus_http, token, gd.service_account_introspection(other_client), MEMBER)

    error = await denial(validator, token)

    assert error.status == 403
    assert openai_body(error)["error"] == {
        "message": f"The service account '{other_client}@clients.auth.globus.org' is not "
        "allowed on this gateway. Ask the gateway operator to add it to "
        "AUTHORIZED_GLOBUS_SERVICE_USERNAMES.",
        "type": "permission_error",
        "param": None,
        "code": "service_account_not_allowed",
    }


async def test_groups_consent_missing_is_401(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    RegisteredResponse(
        service="auth", path=INTROSPECT, method="POST", json=gd.introspection(gd.argonne_user())
    ).add(requests_mock=globus_http)
    RegisteredResponse(
        service="auth",
        path="/v2/oauth2/token",
        method="POST",
        status=400,
        json={"error": "invalid_grant"},
    ).add(requests_mock=globus_http)

    error = await denial(validator, token)

    assert (error.status, error.code) == (401, "groups_consent_required")
    assert "consenting to the gateway's scope" in error.message


@pytest.mark.parametrize("path", [INTROSPECT, "/v2/oauth2/token", "/v2/groups/my_groups"])
async def test_globus_answering_500_is_503_and_not_remembered(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    path: str,
) -> None:
    token = new_token()
    service = "groups" if "groups" in path else "auth"
    outage = RegisteredResponse(
        service=service,
        path=path,
        method="GET" if service == "groups" else "POST",
        status=500,
        json={"errors": [{"code": "InternalError"}]},
    )
    outage.add(requests_mock=globus_http)
    register_token(globus_http, token, gd.introspection(gd.argonne_user()), MEMBER)

    error = await denial(validator, token)

    assert error.status == 503
    assert openai_body(error) == {
        "error": {
            "message": "Globus Auth could not be reached to validate the access token. This is "
            "not a problem with your token; retry in a moment.",
            "type": "api_error",
            "param": None,
            "code": "globus_unavailable",
        }
    }
    # Globus is back (`responses` answers a URL's registrations in order, the 500 once): the
    # same token is validated afresh, not refused from a cached denial.
    assert (await validator.validate(token)).username == "jdoe@anl.gov"


@pytest.mark.parametrize(
    "failure", [requests.exceptions.ConnectionError("refused"), requests.exceptions.ReadTimeout()]
)
async def test_globus_unreachable_is_503(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    failure: Exception,
) -> None:
    globus_http.add(
        responses.POST, "https://auth.globus.org/v2/oauth2/token/introspect", body=failure
    )

    error = await denial(validator, new_token())

    assert (error.status, error.code) == (503, "globus_unavailable")


async def test_globus_slower_than_the_timeout_is_503(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    globus_settings: SettingsWrapper,
) -> None:
    globus_settings.GLOBUS_INTROSPECT_TIMEOUT = 0.2

    def slow(request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(0.6)
        return 200, {}, '{"active": false}'

    globus_http.add_callback(
        responses.POST, "https://auth.globus.org/v2/oauth2/token/introspect", callback=slow
    )

    started = time.monotonic()
    error = await denial(validator, new_token())

    assert (error.status, error.code) == (503, "globus_unavailable")
    assert time.monotonic() - started < 0.5


async def test_globus_rejecting_the_gateway_credentials_is_500_not_401(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    RegisteredResponse(
        service="auth",
        path=INTROSPECT,
        method="POST",
        status=401,
        json={"errors": [{"code": "UNAUTHORIZED", "status": "401"}], "error": "invalid_client"},
    ).add(requests_mock=globus_http)

    error = await denial(validator, new_token())

    assert (error.status, error.code) == (500, "globus_rejected_gateway")
    assert "GLOBUS_APPLICATION_SECRET" in error.message


async def test_gateway_without_globus_configured_refuses_tokens(
    new_token: Callable[[], str], globus_settings: SettingsWrapper
) -> None:
    globus_settings.GLOBUS_APPLICATION_ID = ""

    async with installed(Runtime.from_settings()) as runtime:
        assert runtime.globus is None  # no validator, so no Globus SDK, is built
        with pytest.raises(GatewayError) as caught:
            await authenticate(request({"Authorization": f"Bearer {new_token()}"}))

    error = caught.value
    assert (error.status, error.code) == (401, "globus_not_configured")
    assert "use a gateway API key" in error.message


async def test_concurrent_requests_with_one_token_share_one_introspection(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    register_token(globus_http, token, gd.introspection(gd.argonne_user()), MEMBER)

    principals = await asyncio.gather(*(validator.validate(token) for _ in range(10)))

    assert {p.username for p in principals} == {"jdoe@anl.gov"}
    assert calls_to(globus_http, INTROSPECT) == 1


@pytest.fixture
def two_at_once(globus_settings: SettingsWrapper) -> None:
    # Read when the runtime builds the validator, so set before the `validator` fixture.
    globus_settings.GLOBUS_INTROSPECT_CONCURRENCY = 2


async def test_introspections_run_at_most_the_configured_number_at_once(
    two_at_once: None,
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    running, highest, lock = 0, 0, threading.Lock()

    def inactive_after_a_while(request: Any) -> tuple[int, dict[str, str], str]:
        nonlocal running, highest
        with lock:
            running += 1
            highest = max(highest, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return 200, {}, '{"active": false}'

    globus_http.add_callback(
        responses.POST,
        "https://auth.globus.org/v2/oauth2/token/introspect",
        callback=inactive_after_a_while,
    )
    tokens = [new_token() for _ in range(6)]

    results = await asyncio.gather(*(validator.validate(t) for t in tokens), return_exceptions=True)

    assert all(isinstance(r, GatewayError) and r.status == 401 for r in results)
    assert highest == 2


async def test_a_caller_going_away_does_not_cancel_the_shared_validation(
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    user = gd.argonne_user()
    body = gd.introspection(user)

    def slow_introspection(request: Any) -> tuple[int, dict[str, str], str]:
        time.sleep(0.2)
        return 200, {}, orjson.dumps(body).decode()

    globus_http.add_callback(
        responses.POST,
        "https://auth.globus.org/v2/oauth2/token/introspect",
        callback=slow_introspection,
    )
    register_token(globus_http, token, body, MEMBER, user)
    first = asyncio.create_task(validator.validate(token))
    await asyncio.sleep(0.05)
    first.cancel()  # the client disconnected

    principal = await validator.validate(token)

    assert principal.id == user.id
    assert first.cancelled()
    assert calls_to(globus_http, INTROSPECT) == 1
