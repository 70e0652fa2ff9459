"""Personal keys in process: the owner re-check through the stored Groups grant (Globus over
`responses`, the real SDK), its cache, its refusals, and the operators' commands."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
import responses
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from globus_sdk.testing import RegisteredResponse
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async.auth import key_owners
from resource_server_async.auth.api_keys import generate_key, hash_key
from resource_server_async.errors import GatewayError
from resource_server_async.models import ApiKey
from resource_server_async.runtime import Runtime, installed
from tests.auth import globus_data as gd
from tests.auth.conftest import calls_to, form_of

committed = pytest.mark.django_db(transaction=True)

OWNER = gd.argonne_user()


@pytest.fixture
async def runtime(globus_settings: SettingsWrapper) -> AsyncIterator[Runtime]:
    globus_settings.API_KEY_CACHE_SECONDS = 30
    globus_settings.PERSONAL_KEY_RECHECK_SECONDS = 300
    globus_settings.REDIS_URL = ""
    async with installed(Runtime.from_settings()) as built:
        yield built


@pytest.fixture
def globus() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def refresh_is(token: str) -> Any:
    def match(request: Any) -> tuple[bool, str]:
        form = form_of(request)
        found = form.get("grant_type") == "refresh_token" and form.get("refresh_token") == token
        return found, "" if found else "another refresh token"

    return match


def owner_at_globus(
    mock: responses.RequestsMock, refresh: str, groups: list[str], status: int = 200
) -> None:
    """Globus refreshing the stored grant, and the owner's groups."""
    groups_token = "groups-" + uuid.uuid4().hex
    entry = gd.dependent_tokens(groups_token)[0]
    RegisteredResponse(
        service="auth",
        path="/v2/oauth2/token",
        method="POST",
        status=status,
        json={**entry, "refresh_token": refresh, "other_tokens": []}
        if status == 200
        else {"error": "invalid_grant"},
        match=[refresh_is(refresh)],
    ).add(requests_mock=mock)
    RegisteredResponse(
        service="groups",
        path="/v2/groups/my_groups",
        method="GET",
        json=gd.my_groups(OWNER, groups),
    ).add(requests_mock=mock)


async def personal_key(refresh: str, domain: str = "anl.gov", **fields: Any) -> tuple[str, int]:
    """A personal key row as POST /v1/keys makes it (committed: the validator's thread reads)."""
    key = generate_key()

    def insert() -> int:
        try:
            row = ApiKey.objects.create(
                name="notebook",
                prefix=key[:12],
                key_hash=hash_key(key),
                checksummed=True,
                groups=[gd.GATEWAY_GROUP],
                domain=domain,
                expires_at=timezone.now() + timedelta(days=1),
                owner_id=OWNER.id,
                owner_username=OWNER.username,
                owner_name=OWNER.name,
                owner_groups_token=key_owners.seal(refresh),
                **fields,
            )
            return int(row.pk)
        finally:
            connections.close_all()

    return key, await asyncio.to_thread(insert)


async def set_revoked(key_id: int, revoked: bool) -> None:
    def update() -> None:
        try:
            ApiKey.objects.filter(pk=key_id).update(revoked_at=timezone.now() if revoked else None)
        finally:
            connections.close_all()

    await asyncio.to_thread(update)


@committed
async def test_the_owner_is_rechecked_once_per_period_and_a_warm_key_asks_nobody(
    runtime: Runtime, globus: responses.RequestsMock
) -> None:
    refresh = "rt-" + uuid.uuid4().hex
    owner_at_globus(globus, refresh, [gd.GATEWAY_GROUP, gd.OTHER_GROUP])
    key, key_id = await personal_key(refresh, scope_models=["m1"])

    principal = await runtime.api_keys.validate(key)

    # The owner, with the groups Globus says now (not those stored at creation).
    assert principal.id == OWNER.id and principal.kind == "user"
    assert principal.groups == {gd.GATEWAY_GROUP, gd.OTHER_GROUP}
    assert principal.key_id == key_id and principal.key_models == {"m1"}
    assert calls_to(globus, "/v2/oauth2/token") == 1
    # Warm: the key's cache answers (the row is revoked meanwhile and not read).
    await set_revoked(key_id, True)
    assert await runtime.api_keys.validate(key) == principal
    await set_revoked(key_id, False)
    # The key row is read again (an operator narrowed it meanwhile: that shows at once); the
    # owner's re-check is still fresh: no Globus call.
    await asyncio.to_thread(
        lambda: (
            ApiKey.objects.filter(pk=key_id).update(scope_models=["m2"]) and connections.close_all()
        )
    )
    runtime.api_keys.clear()
    reread = await runtime.api_keys.validate(key)
    assert reread.key_models == {"m2"} and reread.groups == principal.groups
    assert calls_to(globus, "/v2/oauth2/token") == 1
    assert calls_to(globus, "/v2/groups/my_groups") == 1
    # Once the period is over (here: forgotten), Globus is asked again.
    runtime.api_keys.clear()
    assert runtime.globus is not None
    runtime.globus.key_owners.forget(key_id)
    await runtime.api_keys.validate(key)
    assert calls_to(globus, "/v2/oauth2/token") == 2


@committed
async def test_an_owner_outside_the_required_group_is_refused(
    runtime: Runtime, globus: responses.RequestsMock
) -> None:
    refresh = "rt-" + uuid.uuid4().hex
    owner_at_globus(globus, refresh, [gd.OTHER_GROUP])
    key, _ = await personal_key(refresh)

    with pytest.raises(GatewayError) as caught:
        await runtime.api_keys.validate(key)

    assert (caught.value.status, caught.value.code) == (403, "not_in_required_group")


@committed
async def test_a_withdrawn_consent_is_401(runtime: Runtime, globus: responses.RequestsMock) -> None:
    refresh = "rt-" + uuid.uuid4().hex
    owner_at_globus(globus, refresh, [], status=400)
    key, _ = await personal_key(refresh)

    with pytest.raises(GatewayError) as caught:
        await runtime.api_keys.validate(key)

    assert (caught.value.status, caught.value.code) == (401, "key_owner_consent_revoked")
    assert "igw login" in caught.value.message


@committed
async def test_an_identity_provider_no_longer_accepted_is_refused_without_globus(
    runtime: Runtime, globus: responses.RequestsMock
) -> None:
    key, _ = await personal_key("rt-unused", domain="gmail.com")

    with pytest.raises(GatewayError) as caught:
        await runtime.api_keys.validate(key)

    assert caught.value.code == "key_owner_idp_not_allowed"
    assert len(globus.calls) == 0


@committed
async def test_globus_down_is_503_and_not_remembered(
    runtime: Runtime, globus: responses.RequestsMock
) -> None:
    refresh = "rt-" + uuid.uuid4().hex
    owner_at_globus(globus, refresh, [gd.GATEWAY_GROUP], status=503)
    key, _ = await personal_key(refresh)

    for _ in range(2):
        with pytest.raises(GatewayError) as caught:
            await runtime.api_keys.validate(key)
        assert caught.value.code == "globus_unavailable"
    # SDK retries are off: one call per attempt, and the second attempt asked again.
    assert calls_to(globus, "/v2/oauth2/token") == 2


@committed
async def test_a_grant_sealed_under_another_secret_key_is_refused(
    runtime: Runtime, settings: SettingsWrapper, globus: responses.RequestsMock
) -> None:
    key, _ = await personal_key("rt-" + uuid.uuid4().hex)
    settings.SECRET_KEY = "rotated-" + uuid.uuid4().hex

    with pytest.raises(GatewayError) as caught:
        await runtime.api_keys.validate(key)

    assert caught.value.code == "key_owner_recheck_failed"
    assert key_owners.unseal("not a sealed token") is None


@pytest.mark.django_db
def test_operators_list_and_revoke_a_researchers_keys(
    globus_settings: SettingsWrapper, globus: responses.RequestsMock
) -> None:
    RegisteredResponse(
        service="auth", path="/v2/oauth2/token/revoke", method="POST", json={"active": False}
    ).add(requests_mock=globus)
    for name in ("a", "b"):
        ApiKey.objects.create(
            name=name,
            prefix="igw_" + name,
            key_hash=uuid.uuid4().hex,
            owner_id=OWNER.id,
            owner_username=OWNER.username,
            owner_groups_token=key_owners.seal("rt-" + name),
        )
    ApiKey.objects.create(name="service", prefix="igw_s", key_hash=uuid.uuid4().hex)

    out = io.StringIO()
    call_command("list_api_keys", "--owner", OWNER.username, stdout=out)
    assert out.getvalue().splitlines()[0].split()[3:5] == ["STATUS", "OWNER"]
    assert sum(OWNER.username in line for line in out.getvalue().splitlines()) == 2
    call_command("revoke_api_key", "--owner", OWNER.username, stdout=io.StringIO())

    rows = {row.name: row for row in ApiKey.objects.all()}
    assert rows["a"].revoked_at and rows["b"].revoked_at and rows["service"].revoked_at is None
    assert rows["a"].owner_groups_token == "" == rows["b"].owner_groups_token
    revoked = sorted(form_of(call.request)["token"] for call in globus.calls)
    assert revoked == ["rt-a", "rt-b"]
