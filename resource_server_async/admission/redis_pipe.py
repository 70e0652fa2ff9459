"""One pipelined Redis connection per process for admission's Lua scripts.

Calls made in the same event-loop iteration go out in one write; their replies come back in
order on the same connection and are parsed by hiredis. Why not redis-py's client here: a call
through its connection pool costs ~70 µs of the gateway's CPU (a pool checkout, a write and a
read per call, a timeout per call), and admission makes one or two per request, which alone
would double the gateway's cost (bench/: `--scenarios admission`). redis-py stays for
everything else (the stream hub, the response store).

A call that gets no reply within the timeout fails, with every call behind it, and the
connection is dropped (replies are matched by order, so a late one cannot be placed); the next
call connects again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hiredis

from resource_server_async.admission.resp import Packed, bulk, packed_call
from resource_server_async.redis_wire import open_transport, setup_commands


class RedisUnavailable(Exception):
    """Redis did not answer (in time), refused the connection, or failed the script."""


@dataclass(frozen=True)
class Script:
    """A Lua script, called by its SHA-1 (EVALSHA), sent whole once when Redis lacks it."""

    text: str
    sha: str = field(init=False)
    # The command and script of a call, packed once (resp.py): EVALSHA, or EVAL with the text.
    by_sha: bytes = field(init=False, repr=False)
    whole: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sha = hashlib.sha1(self.text.encode()).hexdigest()
        object.__setattr__(self, "sha", sha)
        object.__setattr__(self, "by_sha", bulk("EVALSHA") + bulk(sha))
        object.__setattr__(self, "whole", bulk("EVAL") + bulk(self.text))


class _Call:
    __slots__ = ("args", "deadline", "future", "keys", "script", "sent_whole")

    def __init__(
        self,
        script: Script | None,
        keys: Sequence[Any],
        args: Sequence[Any] | Packed,
        future: asyncio.Future[Any],
        deadline: float = 0.0,
    ) -> None:
        self.script = script  # None: a plain command (AUTH, SELECT), in `args`
        self.keys = keys
        self.args = args
        self.future = future
        self.deadline = deadline  # set when written (redis_pipe._flush)
        self.sent_whole = False

    def packed(self) -> bytes:
        if self.script is None:
            assert not isinstance(self.args, Packed)
            return hiredis.pack_command(tuple(self.args))
        head = self.script.whole if self.sent_whole else self.script.by_sha
        return packed_call(head, self.keys, self.args)


class _Replies(asyncio.Protocol):
    def __init__(self, pipe: ScriptPipe) -> None:
        self.pipe = pipe
        self.reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            self.pipe._answered(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe._lost(self, exc)


class ScriptPipe:
    """`await pipe.call(script, keys, args)`: the script's reply, or RedisUnavailable."""

    def __init__(self, url: str, *, timeout: float, max_pending: int) -> None:
        from redis.asyncio.connection import parse_url

        self._options: dict[str, Any] = dict(parse_url(url))
        self._timeout = timeout
        self._max_pending = max_pending
        self._unsent: list[_Call] = []
        self._waiting: deque[_Call] = deque()
        self._transport: asyncio.Transport | None = None
        self._replies: _Replies | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._flush_soon = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gather: Callable[[], None] | None = None
        # Scripts sent whole (EVAL, which caches them) on this connection: a script's first
        # call goes whole, not by SHA. A NOSCRIPT answer would send it again after the calls
        # written behind it, which Redis has run by then: a release overtaken by the next
        # acquire (measured: after SCRIPT FLUSH, a refund seen late). Bounded by the scripts
        # the code defines.
        self._loaded: set[str] = set()

    def call(
        self,
        script: Script,
        keys: Sequence[Any],
        args: Sequence[Any] | Packed,
        *,
        first: bool = False,
    ) -> Any:
        """A future of the script's reply (integers, bytes and lists, as Redis sends them).
        `args` a Packed: the key count, keys and arguments packed already (`keys` empty).
        `first`: ahead of the calls queued so far (the outbox's releases)."""
        # The pipe belongs to the loop of its first call (its connection does). Kept, because
        # asyncio.get_running_loop() makes a getpid() system call on Python 3.11.
        loop = self._loop or self._bind_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue(_Call(script, keys, args, future), loop, first)
        return future

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    def _queue(self, call: _Call, loop: asyncio.AbstractEventLoop, first: bool = False) -> None:
        if self._closed:
            call.future.set_exception(RedisUnavailable("the gateway is shutting down"))
            return
        if len(self._unsent) + len(self._waiting) >= self._max_pending:
            call.future.set_exception(
                RedisUnavailable(f"{self._max_pending} calls already wait for Redis")
            )
            return
        if first:
            self._unsent.insert(0, call)
        else:
            self._unsent.append(call)
        if not self._flush_soon:
            self._flush_soon = True
            loop.call_soon(self._flush)

    def before_flush(self, gather: Callable[[], None]) -> None:
        """`gather` runs at each flush before the calls are taken, and may queue more (the
        outbox's bundle of this turn's releases, ahead of the rest), in the same write."""
        self._gather = gather

    def want_flush(self) -> None:
        """Flush in this turn of the loop though no call may be queued (the outbox has some)."""
        if not self._flush_soon:
            self._flush_soon = True
            (self._loop or self._bind_loop()).call_soon(self._flush)

    def _flush(self) -> None:
        """Write what this iteration queued, in one write (connecting first if need be)."""
        if self._transport is None:
            self._flush_soon = False
            if self._connecting is None:
                self._connecting = asyncio.get_running_loop().create_task(self._connect())
            return
        if self._gather is not None:
            self._gather()  # its calls schedule no other flush: this one is still on
        self._flush_soon = False
        calls, self._unsent = self._unsent, []
        # One clock read per write: every call of it has the same deadline.
        deadline = time.monotonic() + self._timeout
        packed = []
        loaded = self._loaded
        for call in calls:
            if not call.future.done():  # else a caller that went away
                call.deadline = deadline
                self._waiting.append(call)
                script = call.script
                if script is not None and script.sha not in loaded:
                    call.sent_whole = True
                    loaded.add(script.sha)
                packed.append(call.packed())
        if not packed:
            return
        self._transport.write(b"".join(packed))
        if self._watchdog is None:
            self._arm_watchdog()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        options = self._options
        try:
            async with asyncio.timeout(self._timeout):
                transport, replies = await open_transport(loop, lambda: _Replies(self), options)
        except (OSError, TimeoutError) as exc:
            self._connecting = None
            self._fail_all(RedisUnavailable(f"cannot connect to Redis: {exc or 'timeout'}"))
            return
        self._transport, self._replies = transport, replies
        self._connecting = None
        self._loaded = set()  # another connection: maybe a Redis restarted without its scripts
        # AUTH and SELECT go first, written before anything a flush may put in front.
        setup = [self._command(command, loop) for command in setup_commands(options)]
        if setup:
            self._waiting.extend(setup)
            transport.write(b"".join(call.packed() for call in setup))
        self._flush()

    def _command(self, args: tuple[Any, ...], loop: asyncio.AbstractEventLoop) -> _Call:
        future: asyncio.Future[Any] = loop.create_future()
        future.add_done_callback(_retrieve)  # nobody awaits it; a refusal resets the connection
        return _Call(None, (), args, future, time.monotonic() + self._timeout)

    def _answered(self, reply: Any) -> None:
        if not self._waiting:
            return
        call = self._waiting.popleft()
        if isinstance(reply, hiredis.ReplyError):
            if call.script is None:  # AUTH or SELECT refused: nothing on this connection works
                self._reset(RedisUnavailable(f"Redis refused the connection: {reply}"))
                return
            if str(reply).startswith("NOSCRIPT") and call.script and not call.sent_whole:
                call.sent_whole = True  # this Redis has not seen the script yet
                self._queue(call, asyncio.get_running_loop())
                return
            if not call.future.done():
                call.future.set_exception(RedisUnavailable(f"Redis: {reply}"))
            return
        if not call.future.done():
            call.future.set_result(reply)

    def _arm_watchdog(self) -> None:
        self._watchdog = asyncio.get_running_loop().call_later(self._timeout, self._watch)

    def _watch(self) -> None:
        """The oldest call waits past its deadline: Redis is stuck; start again."""
        self._watchdog = None
        if not self._waiting:
            return
        if self._waiting[0].deadline <= time.monotonic():
            self._reset(RedisUnavailable(f"Redis did not answer within {self._timeout:g} s"))
        else:
            self._arm_watchdog()

    def _lost(self, replies: _Replies, exc: Exception | None) -> None:
        if replies is self._replies:
            self._reset(RedisUnavailable(f"the connection to Redis was lost: {exc or 'closed'}"))

    def _reset(self, error: RedisUnavailable) -> None:
        transport = self._transport
        self._transport = self._replies = None
        if transport is not None:
            transport.abort()
        self._fail_all(error)

    def _fail_all(self, error: RedisUnavailable) -> None:
        calls = [*self._waiting, *self._unsent]
        self._waiting.clear()
        self._unsent.clear()
        for call in calls:
            if not call.future.done():
                call.future.set_exception(error)

    async def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._reset(RedisUnavailable("the gateway is shutting down"))


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
