"""The batch routes' database work, off the event loop: one call in a worker thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import close_old_connections
from starlette.concurrency import run_in_threadpool

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn` (ORM calls, file copies) in anyio's bounded thread pool."""

    def call() -> T:
        # Threads of the pool are reused: drop a connection the database closed meanwhile.
        close_old_connections()
        return fn(*args, **kwargs)

    return await run_in_threadpool(call)
