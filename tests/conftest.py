"""Shared fixtures. End-to-end helpers (real servers) live in tests/servers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from resource_server_async.runtime import NOT_STARTED, Runtime, installed

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

# The real SmolLM2 server fixture (`smollm2`), for the tests marked `needs_model_server`.
pytest_plugins = ["tests.model_server"]


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    """A runtime built from the test's settings, current during the test and closed after it,
    for tests that call adapters or validators without starting the app. Request it after the
    fixtures that change settings: it reads them when it is built."""
    async with installed(Runtime.from_settings()) as built:
        yield built


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Every process-wide resource (sessions, stream hub, executor, validators and their caches)
    lives in a runtime: one per app that starts (its lifespan) or per test (`runtime`), so no
    test sees another's principals or streams. Check that none outlives its test."""
    yield
    from resource_server_async import runtime as process_runtime

    assert process_runtime.current is NOT_STARTED, "a runtime outlived its test"
