"""A Redis connection in subscribe mode for the stream hub: channels subscribed and left, and
each message published to one handed to a callback as it arrives, parsed by hiredis.

Why pushes, not a blocking read per stream: an XREAD BLOCK answers once, so a reader had to
send the next one for every chunk (a write and a wake-up of Redis per chunk, on a connection
per open stream); a subscribed connection receives every stream's messages with nothing sent
after the SUBSCRIBE. One such connection serves all of a process's streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import hiredis

from resource_server_async.admission.resp import bulk
from resource_server_async.redis_wire import open_transport, setup_commands


def _command(name: bytes, channel: bytes) -> bytes:
    return b"*2\r\n" + bulk(name) + bulk(channel)


class RedisReadFailed(Exception):
    """Redis refused the connection, did not confirm in time, or the connection was lost."""


class Subscriber(asyncio.Protocol):
    """`on_message(channel, payload)` for each message; `on_lost(error)` once, when the
    connection ends (nothing is delivered after: its channels' messages are lost)."""

    def __init__(
        self,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[RedisReadFailed], None],
    ) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()  # made by the loop's create_connection
        self._setup: list[asyncio.Future[Any]] = []  # AUTH, SELECT: answered first, in order
        self._confirming: dict[bytes, asyncio.Future[None]] = {}
        self._lost = False

    @classmethod
    async def open(
        cls,
        options: dict[str, Any],
        timeout: float,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[RedisReadFailed], None],
    ) -> Subscriber:
        """Connect (`options` as redis-py's parse_url gives them) and AUTH, within `timeout`."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, connection = await open_transport(
                    loop, lambda: cls(on_message, on_lost), options
                )
        except (OSError, TimeoutError) as exc:
            raise RedisReadFailed(f"cannot connect to Redis: {exc or 'timeout'}") from None
        setup = setup_commands(options)
        if setup:
            connection._setup = [loop.create_future() for _ in setup]
            connection._write(b"".join(map(hiredis.pack_command, setup)))
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*connection._setup)
            except BaseException as exc:
                connection.close()
                if isinstance(exc, TimeoutError):
                    raise RedisReadFailed("Redis did not answer AUTH/SELECT in time") from None
                raise
        return connection

    @property
    def connected(self) -> bool:
        return self._transport is not None

    def subscribe(self, channel: bytes) -> asyncio.Future[None]:
        """A future done when Redis confirms the subscription (messages come from then on)."""
        confirmed: asyncio.Future[None] = self._loop.create_future()
        if self._transport is None:
            confirmed.set_exception(RedisReadFailed("the subscribing connection is closed"))
            return confirmed
        self._confirming[channel] = confirmed
        self._write(_command(b"SUBSCRIBE", channel))
        return confirmed

    def unsubscribe(self, channel: bytes) -> None:
        """Leave `channel` (its confirmation is not waited for: later messages are dropped)."""
        pending = self._confirming.pop(channel, None)
        if pending is not None and not pending.done():
            pending.cancel()
        if self._transport is not None:
            self._write(_command(b"UNSUBSCRIBE", channel))

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()

    def _write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, though they write alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            if type(reply) is list and reply[0] == b"message":
                self._on_message(reply[1], reply[2])
            elif self._setup:
                answered = self._setup.pop(0)
                if isinstance(reply, hiredis.ReplyError):
                    answered.set_exception(RedisReadFailed(f"Redis refused: {reply}"))
                    self.close()
                    return
                answered.set_result(reply)
            elif type(reply) is list and reply[0] == b"subscribe":
                confirmed = self._confirming.pop(reply[1], None)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
            # "unsubscribe" confirmations: nothing waits for them.

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._lost:
            return
        self._lost = True
        error = RedisReadFailed(f"the subscribing connection to Redis was lost: {exc or 'closed'}")
        for waiting in [*self._setup, *self._confirming.values()]:
            if not waiting.done():
                waiting.set_exception(error)
        self._setup.clear()
        self._confirming.clear()
        self._on_lost(error)
