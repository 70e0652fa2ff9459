"""API keys under a flood: checksums refuse guesses without the database; lookups are shared,
batched, bounded (503 beyond) and unknown hashes are remembered briefly, in a bounded cache."""

from __future__ import annotations

import asyncio
import secrets
import string
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest
from django.db import connection
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async import runtime
from resource_server_async.auth.api_keys import (
    KEY_LENGTH,
    KEY_PREFIX,
    ApiKeyValidator,
    generate_key,
    hash_key,
    key_format,
)
from resource_server_async.auth.authenticate import authenticate
from resource_server_async.auth.principal import Principal
from resource_server_async.errors import GatewayError
from resource_server_async.models import ApiKey
from resource_server_async.runtime import Runtime, installed
from tests.auth.test_api_keys import acreate, committed, orm, request

T = TypeVar("T")

URLSAFE = string.ascii_letters + string.digits + "-_"


@pytest.fixture(autouse=True)
async def key_settings(settings: SettingsWrapper) -> AsyncIterator[None]:
    settings.API_KEY_CACHE_SECONDS = 30
    settings.API_KEY_NEGATIVE_CACHE_SECONDS = 5.0
    settings.API_KEY_NEGATIVE_CACHE_SIZE = 10_000
    settings.API_KEY_MAX_PENDING_LOOKUPS = 256
    settings.API_KEY_ACCEPT_LEGACY = True
    # Closing the runtime closes the reader thread's connection, which would otherwise keep the
    # test database from being dropped.
    async with installed(Runtime.from_settings()):
        yield


class ReaderQueries:
    """Counts the queries of the validator's reader thread (Django connections are per thread,
    so the count is read on that thread, queued behind the lookups it is counting)."""

    def __init__(self, validator: ApiKeyValidator) -> None:
        self._reader = validator._database_thread()
        self._initial = 0

    def _on_reader(self, work: Callable[[], T]) -> T:
        return self._reader.submit(work).result()

    def __len__(self) -> int:
        return self._on_reader(lambda: len(connection.queries_log)) - self._initial

    def start(self) -> None:
        def record() -> int:
            connection.force_debug_cursor = True  # log queries although DEBUG is off
            return len(connection.queries_log)

        self._initial = self._on_reader(record)

    def stop(self) -> None:
        self._on_reader(lambda: setattr(connection, "force_debug_cursor", False))


@contextmanager
def database_queries(validator: ApiKeyValidator) -> Iterator[ReaderQueries]:
    queries = ReaderQueries(validator)
    queries.start()
    try:
        yield queries
    finally:
        queries.stop()


async def outcome(call: Awaitable[Principal]) -> Principal | GatewayError:
    try:
        return await call
    except GatewayError as error:
        return error


def codes(results: list[Principal | GatewayError]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        code = result.code if isinstance(result, GatewayError) else "ok"
        counts[code] = counts.get(code, 0) + 1
    return counts


def random_string(length: int) -> str:
    return "".join(secrets.choice(URLSAFE) for _ in range(length))


def legacy_key() -> str:
    """A key as issued before the checksum: the prefix and 43 random characters."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def mistyped(key: str) -> Iterator[str]:
    """Every change of one character after the prefix, and every swap of two neighbours."""
    for i in range(len(KEY_PREFIX), len(key)):
        for other in {"A", "z", "0", "-", "_"} - {key[i]}:
            yield key[:i] + other + key[i + 1 :]
        if i + 1 < len(key) and key[i] != key[i + 1]:
            yield key[:i] + key[i + 1] + key[i] + key[i + 2 :]


def test_issued_keys_carry_a_checksum_that_catches_every_typo() -> None:
    key = generate_key()

    assert len(key) == KEY_LENGTH and key.startswith(KEY_PREFIX)
    assert key_format(key) == "checksummed"
    typos = list(mistyped(key))
    assert len(typos) > 4 * (KEY_LENGTH - len(KEY_PREFIX))
    assert [typo for typo in typos if key_format(typo) is not None] == []
    assert key_format(legacy_key()) == "legacy"
    assert key_format(KEY_PREFIX + "é" * 43) is None


@committed
async def test_a_flood_of_random_keys_is_401_without_a_database_query(
    settings: SettingsWrapper,
) -> None:
    settings.API_KEY_ACCEPT_LEGACY = False
    real = await acreate("--name", "real")
    flood = [KEY_PREFIX + random_string(KEY_LENGTH - len(KEY_PREFIX)) for _ in range(2000)]
    flood += [KEY_PREFIX + random_string(n) for n in range(0, 80)]
    flood += list(mistyped(real))
    flood.append(legacy_key())  # refused by its shape while legacy keys are off

    with database_queries(runtime.current.api_keys) as queries:
        results = await asyncio.gather(
            *[outcome(authenticate(request({"Authorization": f"Bearer {k}"}))) for k in flood]
        )
        flood_queries = len(queries)
        # The capture works: a well-formed key does reach the database.
        assert (await authenticate(request({"Authorization": f"Bearer {real}"}))).username == "real"

    assert codes(results) == {"invalid_api_key": len(flood)}
    assert all(isinstance(r, GatewayError) and r.status == 401 for r in results)
    assert "checksum" in str(results[0])
    assert flood_queries == 0
    assert len(queries) == 1
    assert runtime.current.api_keys.pending_lookups == 0


@committed
async def test_concurrent_requests_with_one_uncached_key_share_one_query() -> None:
    unknown = generate_key()  # well-formed, so only the database can say it is unknown
    valid = await acreate("--name", "shared")

    with database_queries(runtime.current.api_keys) as queries:
        refused = await asyncio.gather(
            *[outcome(runtime.current.api_keys.validate(unknown)) for _ in range(100)]
        )
        concurrent = len(queries)
        # A second wave is answered by the negative cache.
        refused += await asyncio.gather(
            *[outcome(runtime.current.api_keys.validate(unknown)) for _ in range(100)]
        )
        after_second_wave = len(queries)
        runtime.current.api_keys.clear()
        accepted = await asyncio.gather(
            *[outcome(runtime.current.api_keys.validate(valid)) for _ in range(100)]
        )

    assert codes(refused) == {"invalid_api_key": 200}
    assert (concurrent, after_second_wave) == (1, 1)
    assert codes(accepted) == {"ok": 100}
    assert len(queries) == 2


@committed
async def test_pending_lookups_are_bounded_503_beyond_and_read_in_one_batch(
    settings: SettingsWrapper,
) -> None:
    settings.API_KEY_MAX_PENDING_LOOKUPS = 4
    valid = await acreate("--name", "waiting")
    keys = [valid] + [generate_key() for _ in range(3)]
    slow_database = threading.Event()

    with database_queries(runtime.current.api_keys) as queries:
        # The reader thread is busy: lookups pile up as they would behind a slow database.
        runtime.current.api_keys._database_thread().submit(slow_database.wait, 30)
        waiting = [asyncio.create_task(outcome(runtime.current.api_keys.validate(k))) for k in keys]
        # One turn of the loop runs each task up to its wait for the lookup.
        await asyncio.sleep(0)
        assert runtime.current.api_keys.pending_lookups == 4
        beyond = [
            await outcome(runtime.current.api_keys.validate(generate_key())) for _ in range(50)
        ]
        # A request for a key already pending shares its lookup instead of being refused.
        waiting.append(asyncio.create_task(outcome(runtime.current.api_keys.validate(keys[1]))))
        await asyncio.sleep(0)
        assert runtime.current.api_keys.pending_lookups == 4
        slow_database.set()
        answered = await asyncio.gather(*waiting)

    assert all(isinstance(r, GatewayError) for r in beyond)
    assert {(r.status, r.code, r.headers.get("Retry-After")) for r in beyond} == {  # type: ignore[union-attr]
        (503, "api_key_lookups_busy", "1")
    }
    assert codes(answered) == {"ok": 1, "invalid_api_key": 4}
    assert len(queries) == 1  # the four pending hashes were read in one query
    assert runtime.current.api_keys.pending_lookups == 0


@committed
async def test_unknown_hashes_are_remembered_until_the_negative_ttl(
    settings: SettingsWrapper,
) -> None:
    settings.API_KEY_NEGATIVE_CACHE_SECONDS = 5.0
    now = [1_000_000.0]
    validator = ApiKeyValidator(clock=lambda: now[0])
    key = generate_key()
    try:
        with database_queries(validator) as queries:
            for _ in range(20):
                assert (await outcome(validator.validate(key))).code == "invalid_api_key"  # type: ignore[union-attr]
            assert len(queries) == 1
            # The key now exists (a row with its hash); the cached "unknown" still answers ...
            await orm(
                lambda: ApiKey.objects.create(
                    name="late", prefix=key[:12], key_hash=hash_key(key), checksummed=True
                )
            )
            now[0] += 4.9
            assert isinstance(await outcome(validator.validate(key)), GatewayError)
            assert len(queries) == 1
            # ... until its TTL has passed.
            now[0] += 0.2
            assert (await validator.validate(key)).username == "late"
            assert len(queries) == 2
    finally:
        validator.close()


@committed
async def test_the_negative_cache_is_bounded_and_cannot_evict_valid_keys(
    settings: SettingsWrapper,
) -> None:
    settings.API_KEY_NEGATIVE_CACHE_SIZE = 100
    validator = ApiKeyValidator.from_settings()  # sized from the setting, as the runtime does
    valid = await acreate("--name", "regular")
    try:
        assert (await validator.validate(valid)).username == "regular"

        with database_queries(validator) as queries:
            for _ in range(10):
                wave = [generate_key() for _ in range(200)]
                results = await asyncio.gather(*[outcome(validator.validate(k)) for k in wave])
                assert codes(results) == {"invalid_api_key": 200}
            flood_queries = len(queries)
            assert (await validator.validate(valid)).username == "regular"

        assert validator.unknown_cached == 100
        # Batched: 2,000 distinct guesses took a handful of queries, and the valid key none.
        assert flood_queries <= 20
        assert len(queries) == flood_queries
    finally:
        validator.close()


@committed
async def test_legacy_keys_work_while_accepted(settings: SettingsWrapper) -> None:
    old = legacy_key()
    await orm(lambda: ApiKey.objects.create(name="old", prefix=old[:12], key_hash=hash_key(old)))

    assert (await authenticate(request({"Authorization": f"Bearer {old}"}))).username == "old"

    settings.API_KEY_ACCEPT_LEGACY = False
    runtime.current.api_keys.clear()
    with database_queries(runtime.current.api_keys) as queries:
        refused = await outcome(authenticate(request({"Authorization": f"Bearer {old}"})))
    assert isinstance(refused, GatewayError) and refused.status == 401
    assert len(queries) == 0


@committed
async def test_a_caller_that_gives_up_does_not_cancel_the_shared_lookup() -> None:
    valid = await acreate("--name", "patient")
    slow_database = threading.Event()
    runtime.current.api_keys._database_thread().submit(slow_database.wait, 30)
    impatient = asyncio.create_task(runtime.current.api_keys.validate(valid))
    patient = asyncio.create_task(runtime.current.api_keys.validate(valid))
    await asyncio.sleep(0)
    assert runtime.current.api_keys.pending_lookups == 1

    impatient.cancel()  # the client hung up
    slow_database.set()

    assert (await patient).username == "patient"
    assert impatient.cancelled()
    assert runtime.current.api_keys.pending_lookups == 0
