"""Shared fixtures. End-to-end helpers (real servers) live in tests/servers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

# The real SmolLM2 server fixture (`smollm2`), for the tests marked `needs_model_server`.
pytest_plugins = ["tests.model_server"]


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Caches that outlive a test would leak one test's principals or catalog into the next."""
    from resource_server_async.auth.api_keys import api_key_validator

    api_key_validator.clear()
    yield
    api_key_validator.clear()
