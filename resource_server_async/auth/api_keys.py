"""Gateway API keys: the self-checking key format, hashing, and validation behind bounded caches."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import string
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from django.db import close_old_connections, connections

from resource_server_async import runtime
from resource_server_async.auth.principal import KeyOwner, Principal
from resource_server_async.auth.principal_cache import Outcome, outcome_cache, remember
from resource_server_async.errors import GatewayError

# Keys start with this so that they are told from Globus tokens without a network call.
KEY_PREFIX = "igw_"
PREFIX_SHOWN = len(KEY_PREFIX) + 8
_RANDOM_LENGTH = 43  # secrets.token_urlsafe(32)
_CHECKSUM_LENGTH = 6  # a CRC32 (4 bytes) in unpadded URL-safe base64
KEY_LENGTH = len(KEY_PREFIX) + _RANDOM_LENGTH + _CHECKSUM_LENGTH
# Keys issued before the checksum existed: the prefix and the random part only.
LEGACY_KEY_LENGTH = len(KEY_PREFIX) + _RANDOM_LENGTH
_URLSAFE = frozenset(string.ascii_letters + string.digits + "-_")
# Hashes per database query; stays under SQLite's limit on bound parameters.
_LOOKUP_BATCH = 500

if TYPE_CHECKING:
    from resource_server_async.models import ApiKey

KeyFormat = Literal["checksummed", "legacy"]

_WWW_INVALID = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def _checksum(random_part: str) -> str:
    crc = zlib.crc32(random_part.encode()).to_bytes(4, "big")
    return base64.urlsafe_b64encode(crc).rstrip(b"=").decode()


def generate_key() -> str:
    random_part = secrets.token_urlsafe(32)
    return KEY_PREFIX + random_part + _checksum(random_part)


def key_format(key: str) -> KeyFormat | None:
    """Which format a key string has, or None when it cannot be a key the gateway issued.

    The checksum catches random strings and mistyped keys (a CRC32 detects every change of one
    character) before any hashing or database work; it is not a secret and proves nothing about
    the key being real: a well-formed key still goes through the bounded lookup.
    """
    if len(key) == KEY_LENGTH and key.startswith(KEY_PREFIX):
        random_part = key[len(KEY_PREFIX) : -_CHECKSUM_LENGTH]
        return "checksummed" if key[-_CHECKSUM_LENGTH:] == _checksum(random_part) else None
    if len(key) == LEGACY_KEY_LENGTH and key.startswith(KEY_PREFIX):
        return "legacy" if _URLSAFE.issuperset(key[len(KEY_PREFIX) :]) else None
    return None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def create_key(
    name: str,
    groups: list[str] | None = None,
    domain: str = "",
    expires_at: datetime | None = None,
    operator: bool = False,
) -> tuple[str, int]:
    """Create a key; returns (the key, shown once and never stored, its database id)."""
    from resource_server_async.models import ApiKey

    key = generate_key()
    row = ApiKey.objects.create(
        name=name,
        prefix=key[:PREFIX_SHOWN],
        key_hash=hash_key(key),
        checksummed=True,
        groups=list(groups or []),
        domain=domain,
        expires_at=expires_at,
        operator=operator,
    )
    return key, row.pk


def _principal_of(row: ApiKey) -> Principal:
    if row.is_personal:
        # A personal key acts as its owner: the owner's id, so the owner's limits, allocations
        # and projects apply; the groups are replaced by the owner re-check (key_owners.py).
        return Principal(
            id=row.owner_id,
            username=row.owner_username,
            name=row.owner_name,
            kind="user",
            idp_domain=row.domain,
            groups=frozenset(row.groups),
            identity_source="personal_api_key",
            key_id=row.pk,
            key_models=frozenset(row.scope_models),
            key_clusters=frozenset(row.scope_clusters),
        )
    return Principal(
        id=f"api_key:{row.pk}",
        username=row.name,
        name=row.name,
        kind="api_key",
        idp_domain=row.domain,
        groups=frozenset(row.groups),
        # An operator may narrow an operator key in the admin too.
        key_models=frozenset(row.scope_models),
        key_clusters=frozenset(row.scope_clusters),
    )


def _outcomes_for(
    key_hashes: list[str], now: float
) -> tuple[dict[str, Outcome], dict[str, KeyOwner]]:
    """What the database says of each hash, in one query (runs in the reader thread); and for
    personal keys, what their owner re-check needs."""
    from resource_server_async.models import ApiKey

    close_old_connections()
    rows = {row.key_hash: row for row in ApiKey.objects.filter(key_hash__in=key_hashes)}
    unknown = Outcome(until=now + settings.API_KEY_NEGATIVE_CACHE_SECONDS)
    outcomes: dict[str, Outcome] = {}
    owners: dict[str, KeyOwner] = {}
    for key_hash in key_hashes:
        row = rows.get(key_hash)
        if row is None or not row.is_active:
            outcomes[key_hash] = unknown
            continue
        until = now + settings.API_KEY_CACHE_SECONDS
        if row.expires_at is not None:
            until = min(until, row.expires_at.timestamp())
        principal = _principal_of(row)
        outcomes[key_hash] = Outcome(until=until, principal=principal)
        if row.is_personal:
            owners[key_hash] = KeyOwner(row.pk, row.owner_groups_token, principal)
    return outcomes, owners


def _copy(error: GatewayError) -> GatewayError:
    # A cached denial is raised by many requests; each gets its own exception object.
    return GatewayError(
        error.status,
        error.code,
        error.message,
        headers=dict(error.headers),
        extra=dict(error.extra),
    )


def _malformed() -> GatewayError:
    return GatewayError(
        401,
        "invalid_api_key",
        "The API key is not one this gateway issued (its checksum does not match). "
        "Check that it was copied whole.",
        headers=dict(_WWW_INVALID),
    )


def _unknown() -> GatewayError:
    return GatewayError(
        401,
        "invalid_api_key",
        "The API key is unknown, expired or revoked. Ask your gateway operator for a new key.",
        headers=dict(_WWW_INVALID),
    )


def _busy() -> GatewayError:
    return GatewayError(
        503,
        "api_key_lookups_busy",
        "Too many API key checks are waiting for the database; retry in a moment.",
        headers={"Retry-After": "1"},
    )


class ApiKeyValidator:
    """Answers from caches keyed by the key's SHA-256; misses are read in batches, bounded.

    Valid keys and unknown hashes live in separate LRUs, so a flood of guesses cannot evict the
    keys of real callers. Concurrent requests with the same uncached key share one lookup; at
    most API_KEY_MAX_PENDING_LOOKUPS distinct hashes wait for the database, beyond that 503.
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        negative_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._known = outcome_cache(max_entries, clock)
        self._unknown = outcome_cache(negative_entries, clock)
        self._clock = clock
        # One thread keeps one database connection (instead of one per default-pool thread),
        # and it can be closed at shutdown. It reads whole batches, so one thread keeps up; the
        # pending bound caps what waits for it. Its thread starts on the first lookup.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-keys")
        self._read_once = False
        self._pending: dict[str, asyncio.Future[Outcome]] = {}
        self._queued: list[str] = []
        self._reading: asyncio.Task[None] | None = None
        self._owner_checks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls) -> ApiKeyValidator:
        return cls(negative_entries=settings.API_KEY_NEGATIVE_CACHE_SIZE)

    def clear(self) -> None:
        self._known.clear()
        self._unknown.clear()

    @property
    def pending_lookups(self) -> int:
        """Distinct key hashes waiting for the database now."""
        return len(self._pending)

    @property
    def unknown_cached(self) -> int:
        """Unknown key hashes remembered now (at most API_KEY_NEGATIVE_CACHE_SIZE)."""
        return len(self._unknown)

    def _database_thread(self) -> ThreadPoolExecutor:
        self._read_once = True
        return self._reader

    def close(self) -> None:
        """Close the reader thread's database connection and the thread (blocking)."""
        if self._read_once:
            self._reader.submit(connections.close_all).result()
        self._reader.shutdown(wait=True)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def validate(self, key: str) -> Principal:
        shape = key_format(key)
        if shape is None or (shape == "legacy" and not settings.API_KEY_ACCEPT_LEGACY):
            raise _malformed()
        key_hash = hash_key(key)
        outcome = self._known.get(key_hash) or self._unknown.get(key_hash)
        if outcome is None:
            outcome = await self._shared_lookup(key_hash)
        if outcome.denial is not None:
            raise _copy(outcome.denial)
        if outcome.principal is None:
            raise _unknown()
        return outcome.principal

    async def _shared_lookup(self, key_hash: str) -> Outcome:
        future = self._pending.get(key_hash)
        if future is None:
            if len(self._pending) >= settings.API_KEY_MAX_PENDING_LOOKUPS:
                raise _busy()
            future = asyncio.get_running_loop().create_future()
            # Marks a failure as seen even when every waiter went away (disconnects).
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._pending[key_hash] = future
            self._queued.append(key_hash)
            if self._reading is None or self._reading.done():
                self._reading = asyncio.create_task(self._read_queued())
        # One caller giving up (client disconnect) must not cancel the others' lookup.
        return await asyncio.shield(future)

    async def _read_queued(self) -> None:
        """Read every queued hash, one query per batch, until the queue is empty."""
        loop = asyncio.get_running_loop()
        while self._queued:
            batch = self._queued[:_LOOKUP_BATCH]
            del self._queued[:_LOOKUP_BATCH]
            try:
                outcomes, owners = await loop.run_in_executor(
                    self._database_thread(), _outcomes_for, batch, self._clock()
                )
            except Exception as exc:  # the database's errors vary; every waiter must get one
                for key_hash in batch:
                    self._settle(key_hash, exc)
                continue
            for key_hash in batch:
                outcome = outcomes[key_hash]
                if key_hash in owners:
                    # Globus may take a while: the next batch does not wait for it.
                    task = asyncio.create_task(
                        self._check_owner(key_hash, outcome, owners[key_hash])
                    )
                    self._owner_checks.add(task)
                    task.add_done_callback(self._owner_checks.discard)
                    continue
                cache = self._known if outcome.principal is not None else self._unknown
                remember(cache, key_hash, outcome)
                self._settle(key_hash, outcome)

    async def _check_owner(self, key_hash: str, row_outcome: Outcome, owner: KeyOwner) -> None:
        """A personal key: its owner's current groups and the gateway's rules (cached)."""
        globus = runtime.current.globus
        try:
            if globus is None:
                raise GatewayError(
                    401,
                    "globus_not_configured",
                    "This gateway no longer accepts Globus logins, so personal API keys do not "
                    "work (GLOBUS_APPLICATION_ID is not set); use a key from the operator.",
                )
            checked = await globus.key_owners.check(owner)
        except Exception as exc:  # every waiter must get the failure (503 outage, 401)
            self._settle(key_hash, exc)
            return
        principal = None
        if checked.principal is not None and row_outcome.principal is not None:
            # The owner's groups from the re-check; the rest (scope, names) from the row as
            # read now, so an operator's change to the row shows without waiting for Globus.
            principal = replace(row_outcome.principal, groups=checked.principal.groups)
        outcome = Outcome(
            until=min(row_outcome.until, checked.until),
            principal=principal,
            denial=checked.denial,
        )
        remember(self._known if outcome.principal is not None else self._unknown, key_hash, outcome)
        self._settle(key_hash, outcome)

    def forget(self, key: str) -> None:
        """Drop this process's cached answer for a key (revoked here: refused at once)."""
        key_hash = hash_key(key) if is_api_key(key) else key
        self._known.pop(key_hash, None)
        self._unknown.pop(key_hash, None)

    def _settle(self, key_hash: str, result: Outcome | BaseException) -> None:
        future = self._pending.pop(key_hash, None)
        if future is None or future.done():
            return
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
