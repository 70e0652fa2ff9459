"""A streamed answer's bound on silence: one timer per stream, moved only when it fires.

aiohttp's `sock_read` timeout does the same job by cancelling its timer and making a new one at
every read from the socket, which for an open stream is every relayed chunk (about 0.6 us of the
event loop's time each, plus the timer handles' garbage). Once a stream's answer has started,
the endpoint turns aiohttp's off for that connection (as aiohttp does itself for websockets)
and notes the time of each chunk here instead; the timer, when it fires, looks at that time and
either moves to the silence's new end or fails the read.
"""

from __future__ import annotations

import asyncio

import aiohttp


class Silence:
    """Fails `content`'s pending or next read with TimeoutError once `seconds` pass without a
    call to `heard()`; `stop()` when the stream ends."""

    __slots__ = ("_content", "_handle", "_loop", "_seconds", "heard_at")

    def __init__(self, response: aiohttp.ClientResponse, seconds: float) -> None:
        connection = response.connection
        if connection is not None and connection.protocol is not None:
            connection.protocol.read_timeout = None  # until the connection's next request
        self._content = response.content
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self.heard_at = self._loop.time()
        self._handle = self._loop.call_at(self.heard_at + seconds, self._check)

    def heard(self) -> None:
        self.heard_at = self._loop.time()

    def _check(self) -> None:
        due = self.heard_at + self._seconds
        if due > self._loop.time():
            self._handle = self._loop.call_at(due, self._check)
        else:
            self._content.set_exception(TimeoutError(f"nothing read for {self._seconds:g} s"))

    def stop(self) -> None:
        self._handle.cancel()
