"""A Redis connection for a blocking read (XREAD BLOCK): one request of a few commands at a time,
written in one write, the replies parsed by hiredis.

The stream hub's readers use it instead of redis-py, whose pipeline (objects per call, a pool
checkout, a timeout per call) cost more of the gateway's CPU per relayed chunk than the rest of
the read. A request that is cancelled or times out leaves the connection unusable (its replies
would come later, out of place): `idle` is then False and the owner closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import hiredis

from resource_server_async.redis_wire import open_transport, setup_commands


class RedisReadFailed(Exception):
    """Redis did not answer in time, closed the connection, or refused a command."""


class BlockingConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self._replies: list[Any] = []
        self._expected = 0
        self._answer: asyncio.Future[list[Any]] | None = None
        self._loop = asyncio.get_running_loop()  # made by the loop's create_connection

    @classmethod
    async def open(cls, options: dict[str, Any], timeout: float) -> BlockingConnection:
        """Connect (`options` as redis-py's parse_url gives them), AUTH and SELECT."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, connection = await open_transport(loop, cls, options)
        except (OSError, TimeoutError) as exc:
            raise RedisReadFailed(f"cannot connect to Redis: {exc or 'timeout'}") from None
        setup = setup_commands(options)
        if setup:
            try:
                await connection.request(setup, timeout)
            except BaseException:
                connection.close()
                raise
        return connection

    @property
    def idle(self) -> bool:
        """Connected, and no request waits for its replies."""
        return self._transport is not None and self._answer is None

    async def request(self, commands: Sequence[tuple[Any, ...]], timeout: float) -> list[Any]:
        """Each command's reply, in order; RedisReadFailed if any fails or `timeout` s pass."""
        packed = b"".join(hiredis.pack_command(command) for command in commands)
        return await self.request_packed(packed, len(commands), timeout)

    async def request_packed(self, packed: bytes, count: int, timeout: float) -> list[Any]:
        """`request` for `count` commands packed already in RESP (the hub's reads: their
        parts are packed once per stream, where hiredis's packer costs ~2,000 instructions per
        argument, admission/resp.py)."""
        if not self.idle:
            raise RedisReadFailed("the connection is closed or busy")
        assert self._transport is not None
        # The connection's loop, kept: asyncio.get_running_loop() makes a getpid() system call
        # on Python 3.11.
        loop = self._loop
        self._answer = answer = loop.create_future()
        self._expected = count
        self._transport.write(packed)
        timer = loop.call_later(timeout, self._time_up, answer, timeout)
        try:
            replies = await answer
        finally:
            timer.cancel()
        # Only a request answered in full frees the connection (cancelled, it stays busy).
        self._answer = None
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise RedisReadFailed(f"Redis: {reply}")
        return replies

    def _time_up(self, answer: asyncio.Future[list[Any]], timeout: float) -> None:
        if not answer.done():
            answer.set_exception(RedisReadFailed(f"Redis did not answer within {timeout:g} s"))
        self.close()

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, though they write alike.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            self._replies.append(reply)
            if len(self._replies) == self._expected and self._answer is not None:
                replies, self._replies = self._replies, []
                if not self._answer.done():
                    self._answer.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._answer is not None and not self._answer.done():
            reason = exc or "closed"
            self._answer.set_exception(
                RedisReadFailed(f"the connection to Redis was lost: {reason}")
            )
