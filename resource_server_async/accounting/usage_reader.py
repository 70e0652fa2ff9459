"""Runs usage queries off the event loop: one thread with its own database connection, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import close_old_connections, connections

from resource_server_async.errors import GatewayError

T = TypeVar("T")


def _with_fresh_connection(function: Callable[..., T], args: tuple[Any, ...]) -> T:
    close_old_connections()  # a connection the database dropped is not reused
    return function(*args)


class UsageReader:
    """Usage asks the database for sums over many records: not the hot path, but a caller can
    ask often. One thread answers them in turn; at most `max_pending` wait, beyond that 503."""

    def __init__(self, max_pending: int) -> None:
        self._max_pending = max(1, max_pending)
        self._pending = 0
        self._used = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage")

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        if self._pending >= self._max_pending:
            raise GatewayError(
                503,
                "usage_busy",
                f"{self._pending} usage queries are already waiting (USAGE_MAX_PENDING); "
                "retry in a moment.",
                headers={"Retry-After": "1"},
            )
        self._pending += 1
        self._used = True
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._thread, _with_fresh_connection, function, args)
        finally:
            self._pending -= 1

    def close(self) -> None:
        """Close the thread's database connection, then the thread (blocking)."""
        if self._used:
            self._thread.submit(connections.close_all).result()
        self._thread.shutdown(wait=True)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
