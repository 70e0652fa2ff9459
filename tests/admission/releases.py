"""A release as the tests wait for it: awaited when it is awaitable (in-process), else sent
(Redis: the outbox's bundle, which the next call of the same connection follows)."""

from __future__ import annotations

from collections.abc import Awaitable


async def settled(release: Awaitable[None] | None) -> None:
    if release is not None:
        await release
