"""Waiting on a condition, not a fixed sleep: a loaded machine slows the tests, never fails them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# Generous: a condition that holds at all holds well within this on a busy two-core machine.
PATIENCE = 10.0
_STEP = 0.005


def wait_until(condition: Callable[[], object], timeout: float = PATIENCE) -> None:
    """Return once `condition()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {condition}"
        time.sleep(_STEP)


async def wait_until_async(condition: Callable[[], object], timeout: float = PATIENCE) -> None:
    """The same on an event loop: it yields to the loop between checks."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {condition}"
        await asyncio.sleep(_STEP)
