"""Gateway API keys: generation, hashing, and validation with a short in-process cache."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connections

from resource_server_async.auth.principal import Principal
from resource_server_async.errors import GatewayError
from resource_server_async.lifecycle import on_shutdown

# Keys start with this so that they are told from Globus tokens without a network call.
KEY_PREFIX = "igw_"
_PREFIX_SHOWN = len(KEY_PREFIX) + 8


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def create_key(
    name: str, groups: list[str] | None = None, domain: str = "", expires_at: datetime | None = None
) -> tuple[str, int]:
    """Create a key; returns (the key, shown once and never stored, its database id)."""
    from resource_server_async.models import ApiKey

    key = generate_key()
    row = ApiKey.objects.create(
        name=name,
        prefix=key[:_PREFIX_SHOWN],
        key_hash=hash_key(key),
        groups=list(groups or []),
        domain=domain,
        expires_at=expires_at,
    )
    return key, row.pk


def _principal_for(key_hash: str) -> tuple[Principal | None, float]:
    """(principal or None, until when the answer may be cached) from the database."""
    from resource_server_async.models import ApiKey

    close_old_connections()
    row = ApiKey.objects.filter(key_hash=key_hash).first()
    now = time.time()
    if row is None or not row.is_active:
        return None, now + min(settings.API_KEY_CACHE_SECONDS, 5)
    until = now + settings.API_KEY_CACHE_SECONDS
    if row.expires_at is not None:
        until = min(until, row.expires_at.timestamp())
    principal = Principal(
        id=f"api_key:{row.pk}",
        username=row.name,
        name=row.name,
        kind="api_key",
        idp_domain=row.domain,
        groups=frozenset(row.groups),
    )
    return principal, until


class ApiKeyValidator:
    """Answers from a small LRU keyed by the key's SHA-256; misses read the database."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._cache: OrderedDict[str, tuple[Principal | None, float]] = OrderedDict()
        self._max_entries = max_entries
        self._reader: ThreadPoolExecutor | None = None

    def clear(self) -> None:
        self._cache.clear()

    def _database_thread(self) -> ThreadPoolExecutor:
        if self._reader is None:
            # One thread keeps one database connection (instead of one per default-pool
            # thread), and it can be closed at shutdown.
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-keys")
            on_shutdown(self.aclose)
        return self._reader

    def close(self) -> None:
        """Close the reader thread's database connection and the thread (blocking)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.submit(connections.close_all).result()
            reader.shutdown(wait=True)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def validate(self, key: str) -> Principal:
        key_hash = hash_key(key)
        cached = self._cache.get(key_hash)
        now = time.time()
        if cached is None or cached[1] <= now:
            loop = asyncio.get_running_loop()
            cached = await loop.run_in_executor(self._database_thread(), _principal_for, key_hash)
            self._cache[key_hash] = cached
            # Evicting the least recently used keeps real keys cached while random guesses
            # (which are cached too, briefly) pass through.
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key_hash)
        principal = cached[0]
        if principal is None:
            raise GatewayError(
                401,
                "invalid_api_key",
                "The API key is unknown, expired or revoked. "
                "Ask your gateway operator for a new key.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return principal


api_key_validator = ApiKeyValidator()
