"""Process-wide resources (HTTP pools, executors) register here to be closed at shutdown."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

_shutdown_hooks: list[Callable[[], Awaitable[None]]] = []


def on_shutdown(hook: Callable[[], Awaitable[None]]) -> None:
    """Register a coroutine function to await when the API shuts down (once per hook)."""
    if hook not in _shutdown_hooks:
        _shutdown_hooks.append(hook)


async def run_shutdown_hooks() -> None:
    # Last registered, first closed: later resources may depend on earlier ones.
    while _shutdown_hooks:
        hook = _shutdown_hooks.pop()
        try:
            await hook()
        except Exception:
            logger.exception("shutdown hook %r failed", hook)
