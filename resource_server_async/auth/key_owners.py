"""Personal API keys act as their owner: the owner's groups, re-read from Globus, and the rules.

The gateway cannot introspect a personal key's owner without the owner's token, so when a key
is created it asks Globus for a *dependent refresh token* for the Groups scope (offline access,
which the gateway's scope grants when its Groups dependency has requires_refresh_token). It is
stored encrypted (Fernet, a key derived from SECRET_KEY). At most every
PERSONAL_KEY_RECHECK_SECONDS the gateway refreshes it, reads the owner's active groups and
applies the gateway-wide rules again (GLOBUS_GROUPS, AUTHORIZED_GROUPS_PER_IDP,
AUTHORIZED_IDP_DOMAINS); the outcome is cached (Redis when set, and in process), so a key in use
costs Globus two calls per owner-key and period, never one per request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from resource_server_async.auth import globus_api
from resource_server_async.auth.globus_rules import AuthRules, check_groups
from resource_server_async.auth.principal import KeyOwner, Principal
from resource_server_async.auth.principal_cache import Outcome, PrincipalCache
from resource_server_async.errors import GatewayError

if TYPE_CHECKING:
    from resource_server_async.auth.globus import GlobusTokenValidator

# A refused owner is remembered this long at most (a user re-joining a group is back soon).
DENIAL_SECONDS = 30.0


def _fernet() -> Fernet:
    # Derived, not SECRET_KEY itself: a separate purpose gets a separate key.
    digest = hashlib.sha256(b"igw personal key owner tokens:" + settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(digest.digest()))


def seal(token: str) -> str:
    return _fernet().encrypt(token.encode()).decode()


def unseal(sealed: str) -> str | None:
    """The stored token, or None when it cannot be read (SECRET_KEY changed, or none stored)."""
    if not sealed:
        return None
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None


def globus_settings() -> globus_api.GlobusSettings:
    return globus_api.GlobusSettings(
        client_id=settings.GLOBUS_APPLICATION_ID,
        client_secret=settings.GLOBUS_APPLICATION_SECRET,
        http_timeout=settings.GLOBUS_INTROSPECT_TIMEOUT,
    )


def _unavailable() -> GatewayError:
    return GatewayError(
        503,
        "globus_unavailable",
        "Globus could not be reached to re-check the owner of this personal API key; retry in "
        "a moment.",
        headers={"Retry-After": "5"},
    )


def _unreadable() -> GatewayError:
    return GatewayError(
        401,
        "key_owner_recheck_failed",
        "The gateway can no longer re-check the owner of this personal API key (its stored "
        "Globus grant is unreadable). Create a new key (igw keys create).",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _idp_refused(domain: str) -> GatewayError:
    return GatewayError(
        403,
        "key_owner_idp_not_allowed",
        f"This personal API key belongs to a {domain or 'unknown'} identity, whose identity "
        "provider this gateway no longer accepts. Log in with an accepted identity and create "
        "a new key.",
    )


class KeyOwnerChecks:
    """The owner re-check of each personal key, cached for PERSONAL_KEY_RECHECK_SECONDS."""

    def __init__(self, globus: GlobusTokenValidator, redis_url: str = "") -> None:
        # `globus`: the runtime's GlobusTokenValidator (its bounded thread pool runs the calls).
        self._globus = globus
        self.cache = PrincipalCache(namespace="auth:key-owner", redis_url=redis_url)
        self._inflight: dict[int, asyncio.Future[Outcome]] = {}

    async def check(self, owner: KeyOwner) -> Outcome:
        digest = f"key-{owner.key_id}"
        outcome = await self.cache.get(digest)
        if outcome is not None:
            return outcome
        future = self._inflight.get(owner.key_id)
        if future is None:
            future = asyncio.ensure_future(self._recheck(digest, owner))
            self._inflight[owner.key_id] = future
            future.add_done_callback(lambda _: self._inflight.pop(owner.key_id, None))
        return await asyncio.shield(future)

    async def _recheck(self, digest: str, owner: KeyOwner) -> Outcome:
        now = time.time()
        rules = AuthRules.from_settings()
        try:
            principal = await self._current(owner, rules)
        except GatewayError as error:
            if error.status not in (401, 403):
                raise
            denied = Outcome(until=now + DENIAL_SECONDS, denial=error)
            await self.cache.put(digest, denied)
            return denied
        accepted = Outcome(until=now + settings.PERSONAL_KEY_RECHECK_SECONDS, principal=principal)
        await self.cache.put(digest, accepted)
        return accepted

    async def _current(self, owner: KeyOwner, rules: AuthRules) -> Principal:
        domain = owner.principal.idp_domain
        if rules.idp_domains and domain not in rules.idp_domains:
            raise _idp_refused(domain)
        refresh_token = unseal(owner.sealed_token)
        if refresh_token is None:
            raise _unreadable()
        in_thread = self._globus.in_thread
        try:
            async with asyncio.timeout(settings.GLOBUS_INTROSPECT_TIMEOUT):
                groups = await in_thread(
                    globus_api.owner_group_ids, globus_settings(), refresh_token
                )
        except (globus_api.GlobusOutage, TimeoutError):
            raise _unavailable() from None
        principal = replace(owner.principal, groups=frozenset(groups))
        check_groups(principal, rules)
        return principal

    def forget(self, key_id: int) -> None:
        """Drop this process's copy of a key's re-check (after a revocation here)."""
        self.cache.forget_local(f"key-{key_id}")

    async def aclose(self) -> None:
        await self.cache.aclose()
