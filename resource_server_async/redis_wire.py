"""A raw asyncio connection to Redis from redis-py's parsed URL options: its socket, and the
AUTH and SELECT it needs first (shared by admission's pipelined connection and the stream
hub's subscribing connection, both of which speak RESP with hiredis instead of through redis-py)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

P = TypeVar("P", bound=asyncio.BaseProtocol)


async def open_transport(
    loop: asyncio.AbstractEventLoop, protocol: Callable[[], P], options: dict[str, Any]
) -> tuple[asyncio.Transport, P]:
    """The socket a URL names (`unix://` path, or host and port; TLS for `rediss://`)."""
    if "path" in options:
        transport, made = await loop.create_unix_connection(protocol, options["path"])
    else:
        # redis-py marks rediss:// URLs with its SSL connection class.
        secure = "SSL" in getattr(options.get("connection_class"), "__name__", "")
        transport, made = await loop.create_connection(
            protocol,
            options.get("host", "localhost"),
            options.get("port", 6379),
            ssl=ssl.create_default_context() if secure else None,
        )
    return transport, made


def setup_commands(options: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The commands a new connection sends before any other: AUTH, SELECT, as the URL asks."""
    setup: list[tuple[Any, ...]] = []
    password, username = options.get("password"), options.get("username")
    if password:
        setup.append(("AUTH", username, password) if username else ("AUTH", password))
    if options.get("db"):
        setup.append(("SELECT", options["db"]))
    return setup
