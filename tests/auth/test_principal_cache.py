"""The principal cache: hits make no network call, keys are digests, lifetimes are bounded."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import pytest
import responses
from pytest_django.fixtures import Settings as SettingsWrapper
from redis import asyncio as redis_asyncio

from resource_server_async.auth.globus import DENIAL_CACHE_SECONDS, GlobusTokenValidator
from resource_server_async.auth.principal import Principal
from resource_server_async.auth.principal_cache import Outcome, PrincipalCache, token_digest
from resource_server_async.errors import GatewayError
from tests.auth import globus_data as gd
from tests.auth.conftest import calls_to, register_token

MEMBER = [gd.GATEWAY_GROUP]


async def redis_entries(settings: SettingsWrapper, needle: str) -> dict[bytes, bytes]:
    """Every Redis key containing `needle`, with its value."""
    client = redis_asyncio.from_url(settings.REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"*{needle}*")]
        return {k: await client.get(k) for k in keys}
    finally:
        await client.aclose()


async def test_a_cache_hit_makes_no_network_call(
    cache_backend: str,
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    register_token(globus_http, token, gd.introspection(gd.argonne_user()), MEMBER)

    first = await validator.validate(token)
    calls = len(globus_http.calls)
    assert calls == 3  # introspection, dependent token grant, my_groups
    second = await validator.validate(token)

    assert second == first
    assert len(globus_http.calls) == calls


async def test_another_worker_reads_the_principal_from_redis(
    cache_backend: str,
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    if cache_backend != "redis":
        pytest.skip("only Redis is shared between workers")
    token = new_token()
    register_token(globus_http, token, gd.introspection(gd.argonne_user()), MEMBER)
    first = await validator.validate(token)

    other_worker = GlobusTokenValidator()  # its own in-process cache, the same Redis
    try:
        assert await other_worker.validate(token) == first
    finally:
        await other_worker.aclose()
    assert calls_to(globus_http, "/v2/oauth2/token/introspect") == 1


async def test_the_cache_key_is_the_sha256_of_the_token_never_the_token(
    cache_backend: str,
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    globus_settings: SettingsWrapper,
) -> None:
    token = new_token()
    register_token(globus_http, token, gd.introspection(gd.argonne_user()), MEMBER)
    await validator.validate(token)
    digest = hashlib.sha256(token.encode()).hexdigest()

    assert token_digest(token) == digest
    local = validator.cache._memory
    assert digest in local
    assert all(token not in key for key in local)
    assert all(token.encode() not in outcome.to_json() for outcome in local.values())
    if cache_backend == "redis":
        stored = await redis_entries(globus_settings, digest)
        assert [key.decode() for key in stored] == [validator.cache._key(digest)]
        assert validator.cache._key(digest).endswith(f":auth:globus:{digest}")
        assert all(token.encode() not in value for value in stored.values())
        assert await redis_entries(globus_settings, token) == {}


async def test_lifetime_is_bounded_by_the_token_expiry(
    cache_backend: str,
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    globus_settings: SettingsWrapper,
) -> None:
    token = new_token()
    body = gd.introspection(gd.argonne_user(), expires_in=40)
    register_token(globus_http, token, body, MEMBER)
    await validator.validate(token)

    outcome = await validator.cache.get(token_digest(token))
    assert outcome is not None
    assert outcome.until == body["exp"]
    if cache_backend == "redis":
        client = redis_asyncio.from_url(globus_settings.REDIS_URL)
        try:
            ttl = await client.ttl(validator.cache._key(token_digest(token)))
        finally:
            await client.aclose()
        assert 30 <= ttl <= 41


async def test_lifetime_is_bounded_by_auth_cache_max_seconds(
    cache_backend: str,
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    globus_settings: SettingsWrapper,
) -> None:
    globus_settings.AUTH_CACHE_MAX_SECONDS = 60
    token = new_token()
    register_token(globus_http, token, gd.introspection(gd.argonne_user()), MEMBER)
    before = time.time()
    await validator.validate(token)

    outcome = await validator.cache.get(token_digest(token))
    assert outcome is not None
    assert before + 60 <= outcome.until <= time.time() + 60


async def test_an_expired_entry_asks_globus_again(
    cache_backend: str,
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
    globus_settings: SettingsWrapper,
) -> None:
    globus_settings.AUTH_CACHE_MAX_SECONDS = 0  # nothing is remembered
    token = new_token()
    register_token(globus_http, token, gd.introspection(gd.argonne_user()), MEMBER)

    await validator.validate(token)
    await validator.validate(token)

    assert calls_to(globus_http, "/v2/oauth2/token/introspect") == 2


async def test_a_denial_is_remembered_briefly(
    cache_backend: str,
    validator: GlobusTokenValidator,
    globus_http: responses.RequestsMock,
    new_token: Callable[[], str],
) -> None:
    token = new_token()
    register_token(globus_http, token, gd.introspection(gd.argonne_user(), active=False), MEMBER)
    before = time.time()

    for _ in range(3):
        with pytest.raises(GatewayError) as caught:
            await validator.validate(token)
        assert (caught.value.status, caught.value.code) == (401, "invalid_token")

    assert calls_to(globus_http, "/v2/oauth2/token/introspect") == 1
    outcome = await validator.cache.get(token_digest(token))
    assert outcome is not None and outcome.denial is not None
    assert outcome.until <= before + DENIAL_CACHE_SECONDS + 1


async def test_redis_outage_falls_back_to_the_in_process_cache(
    settings: SettingsWrapper, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    cache = PrincipalCache(namespace="test", redis_url=settings.REDIS_URL)
    principal = Principal(id="u1", username="jdoe@anl.gov", kind="user")
    outcome = Outcome(until=time.time() + 60, principal=principal)
    try:
        await cache.put("digest", outcome)
        assert (await cache.get("digest")) == outcome
        cache.clear_local()
        assert await cache.get("digest") is None
    finally:
        await cache.aclose()
    assert "Redis write failed" in caplog.text


def test_outcomes_survive_the_json_round_trip() -> None:
    principal = Principal(
        id="u1",
        username="jdoe@anl.gov",
        kind="user",
        name="Jane Doe",
        idp_domain="anl.gov",
        groups=frozenset({"g1", "g2"}),
        identity_source="Argonne National Laboratory",
    )
    accepted = Outcome(until=123.5, principal=principal)
    assert Outcome.from_json(accepted.to_json()) == accepted

    denial = GatewayError(
        401, "session_policy_failed", "log in again", headers={"A": "b"}, extra={"code": "X"}
    )
    restored = Outcome.from_json(Outcome(until=9.0, denial=denial).to_json())
    assert restored.denial is not None
    assert (restored.denial.status, restored.denial.code, restored.denial.message) == (
        401,
        "session_policy_failed",
        "log in again",
    )
    assert (restored.denial.headers, restored.denial.extra) == ({"A": "b"}, {"code": "X"})
