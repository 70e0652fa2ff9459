"""Fixtures for the auth tests: Globus settings, Globus over `responses`, a clean validator."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from globus_sdk.testing import RegisteredResponse
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async.auth.globus import GlobusTokenValidator
from resource_server_async.runtime import Runtime, installed
from tests.auth import globus_data as gd

SERVICE_CLIENT_ID = "7c3e1a92-5b4d-4f6e-8a1b-2c3d4e5f6a7b"
SERVICE_USERNAME = f"{SERVICE_CLIENT_ID}@clients.auth.globus.org"


@pytest.fixture
def globus_settings(settings: SettingsWrapper) -> SettingsWrapper:
    """A gateway that accepts Argonne logins in GATEWAY_GROUP, and one service account."""
    settings.GLOBUS_APPLICATION_ID = gd.GATEWAY_CLIENT_ID
    settings.GLOBUS_APPLICATION_SECRET = gd.GATEWAY_CLIENT_SECRET
    settings.AUTHORIZED_IDP_DOMAINS = ["anl.gov"]
    settings.AUTHORIZED_GROUPS_PER_IDP = {}
    settings.GLOBUS_GROUPS = [gd.GATEWAY_GROUP]
    settings.GLOBUS_POLICIES = []
    settings.AUTHORIZED_GLOBUS_SERVICE_USERNAMES = [SERVICE_USERNAME]
    settings.AUTH_CACHE_MAX_SECONDS = 300
    settings.GLOBUS_INTROSPECT_TIMEOUT = 2.0
    settings.GLOBUS_INTROSPECT_CONCURRENCY = 4
    return settings


@pytest.fixture(params=["memory", "redis"])
def cache_backend(request: pytest.FixtureRequest, globus_settings: SettingsWrapper) -> str:
    """Runs a test with the in-process cache, and with Redis when REDIS_URL is set."""
    if request.param == "redis":
        url = os.environ.get("REDIS_URL", "")
        if not url:
            pytest.skip("REDIS_URL is not set (the CI's second run sets it)")
        globus_settings.REDIS_URL = url
    else:
        globus_settings.REDIS_URL = ""
    return str(request.param)


@pytest.fixture
async def validator(
    request: pytest.FixtureRequest, globus_settings: SettingsWrapper
) -> AsyncIterator[GlobusTokenValidator]:
    """The validator of a runtime built for the test (so empty), current during the test and
    closed after it. Built after the settings it reads: Globus's, and the cache backend's."""
    if "cache_backend" in request.fixturenames:
        request.getfixturevalue("cache_backend")
    async with installed(Runtime.from_settings()) as runtime:
        assert runtime.globus is not None
        yield runtime.globus


@pytest.fixture
def new_token() -> Callable[[], str]:
    """Tokens unique to the test, so a shared Redis never answers for another test's token."""
    return lambda: "Ag" + uuid.uuid4().hex + uuid.uuid4().hex


@pytest.fixture
def globus_http() -> Iterator[responses.RequestsMock]:
    """Globus Auth and Groups as registered responses: the real SDK runs, over mocked HTTP."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def form_of(request: Any) -> dict[str, str]:
    body = request.body or ""
    if isinstance(body, bytes):
        body = body.decode()
    return {k: v[0] for k, v in parse_qs(body).items()}


def token_is(token: str) -> Callable[[Any], tuple[bool, str]]:
    """A `responses` matcher: the form field `token` (introspection, dependent grant)."""

    def match(request: Any) -> tuple[bool, str]:
        found = form_of(request).get("token") == token
        return found, "" if found else "another token"

    return match


def bearer_is(token: str) -> Callable[[Any], tuple[bool, str]]:
    def match(request: Any) -> tuple[bool, str]:
        found = request.headers.get("Authorization") == f"Bearer {token}"
        return found, "" if found else "another bearer"

    return match


def register_token(
    mock: responses.RequestsMock,
    token: str,
    body: dict[str, Any],
    groups: list[str] | None = None,
    identity: gd.Identity | None = None,
) -> None:
    """Introspection of `token`, its dependent Groups token and the groups it is a member of."""
    RegisteredResponse(
        service="auth",
        path="/v2/oauth2/token/introspect",
        method="POST",
        json=body,
        match=[token_is(token)],
    ).add(requests_mock=mock)
    groups_token = "groups-" + uuid.uuid4().hex
    RegisteredResponse(
        service="auth",
        path="/v2/oauth2/token",
        method="POST",
        json=gd.dependent_tokens(groups_token),
        match=[token_is(token)],
    ).add(requests_mock=mock)
    RegisteredResponse(
        service="groups",
        path="/v2/groups/my_groups",
        method="GET",
        json=gd.my_groups(identity or gd.argonne_user(), groups or []),
        match=[bearer_is(groups_token)],
    ).add(requests_mock=mock)


def calls_to(mock: responses.RequestsMock, path: str) -> int:
    return sum(1 for call in mock.calls if call.request.url.split("?")[0].endswith(path))
