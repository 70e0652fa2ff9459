"""An in-process async cache that serves a stale value while one background load replaces it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    loaded_at: float


@dataclass(slots=True)
class _Failure:
    error: BaseException
    failed_at: float


class RefreshingCache(Generic[K, V]):
    """Values are fresh for `ttl` seconds. Until `max_age`, a stale value is still answered at
    once and a single background load replaces it; past that (or on a miss) callers wait for a
    load, which concurrent callers share. A failed load is not cached as a value; its callers get
    the error, and so do callers of the next `failure_ttl` seconds that have no value to fall back
    on; a stale value is not refreshed again during that time either (so that a dead source is
    not asked again by every request).
    """

    def __init__(
        self, ttl: float, max_age: float, max_entries: int = 4096, failure_ttl: float = 0.0
    ) -> None:
        self.ttl = ttl
        self.max_age = max(max_age, ttl)
        self.failure_ttl = failure_ttl
        self._max_entries = max_entries
        self._entries: dict[K, _Entry[V]] = {}
        self._loads: dict[K, asyncio.Task[V]] = {}
        self._failures: dict[K, _Failure] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            age = time.monotonic() - entry.loaded_at
            if age < self.ttl:
                return entry.value
            if age < self.max_age:
                if self._recent_failure(key) is None:
                    self._start_load(key, load)
                return entry.value
        failure = self._recent_failure(key)
        if failure is not None:
            # Without the old traceback: re-raising would otherwise chain every caller's frames.
            raise failure.with_traceback(None)
        # shield: one caller giving up (client gone) must not cancel the load others await.
        return await asyncio.shield(self._start_load(key, load))

    def _recent_failure(self, key: K) -> BaseException | None:
        """The last load's error if it failed less than `failure_ttl` ago: no new load yet."""
        failure = self._failures.get(key)
        if failure is not None and time.monotonic() - failure.failed_at < self.failure_ttl:
            return failure.error
        return None

    def peek_refreshing(self, key: K, load: Callable[[], Awaitable[V]]) -> V | None:
        """The cached value if younger than `max_age`, without waiting; a value older than
        `ttl` (or none) starts one background load. For hot paths that must never wait."""
        entry = self._entries.get(key)
        age = self.max_age if entry is None else time.monotonic() - entry.loaded_at
        if age >= self.ttl and key not in self._loads and self._recent_failure(key) is None:
            self._start_load(key, load)
        return entry.value if entry is not None and age < self.max_age else None

    def peek(self, key: K) -> V | None:
        """The cached value, however old, without loading."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def clear(self) -> None:
        self._entries.clear()
        self._failures.clear()
        for task in self._loads.values():
            task.cancel()
        self._loads.clear()

    def _start_load(self, key: K, load: Callable[[], Awaitable[V]]) -> asyncio.Task[V]:
        loop = asyncio.get_running_loop()
        task = self._loads.get(key)
        # A task of another loop (a finished test's, a restarted server's) will never finish here.
        if task is not None and not task.done() and task.get_loop() is loop:
            return task
        task = loop.create_task(self._load(key, load))
        self._loads[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))
        return task

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        value = await load()
        if key not in self._entries and len(self._entries) >= self._max_entries:
            # Keys are clusters or endpoints: a full cache means churn, so start over.
            self._entries.clear()
        self._entries[key] = _Entry(value, time.monotonic())
        self._failures.pop(key, None)
        return value

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._loads.get(key) is task:
            del self._loads[key]
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        if self.failure_ttl > 0:
            if key not in self._failures and len(self._failures) >= self._max_entries:
                self._failures.clear()
            self._failures[key] = _Failure(error, time.monotonic())
        if key in self._entries:
            # A background refresh failed; the stale value keeps serving until max_age.
            logger.warning("refresh of %r failed: %s", key, error)
