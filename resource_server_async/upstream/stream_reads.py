"""A model server's event stream as reads the relay awaits itself, with no async generator between.

Each async generator between the relay and the socket's read is resumed twice per relayed chunk
(once to hand the chunk up, once to ask for the next); reading the aiohttp answer's StreamReader
directly from the relay spares one such layer per chunk (bench/stream_callgrind.py: 44.6k -> 43.9k
instructions per relayed chunk, within the bench's run-to-run spread of about 1k; tracemalloc at
1,000 open streams 25.9 -> 25.7 kB per stream). What that generator did around
each read is here: the bound on silence, the first byte's time, the failures as the caller's errors,
and the answer's release (whole) or close (not: the server learns to stop generating).

Layers that translate a stream (Anthropic Messages, Responses) read it as any async iterator.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp

from resource_server_async.upstream import errors as upstream_errors
from resource_server_async.upstream.silence import Silence

if TYPE_CHECKING:
    from resource_server_async.accounting.outcome import RequestOutcome
    from resource_server_async.endpoints.base import BaseEndpoint


class StreamReads(AsyncIterator[bytes]):
    """An upstream stream: `start()` once, then await `read()` until it gives b"" (the end),
    calling `heard()` after each chunk; what a read raises goes through `failure()`, and
    `close(finished)` ends it, however it ended. Iterated, it does all that itself."""

    __slots__ = ("_closed", "_endpoint", "_outcome", "_read", "_response", "_seconds", "_silence")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        endpoint: BaseEndpoint,
        seconds: float,
        outcome: RequestOutcome | None,
    ) -> None:
        self._response = response
        self._endpoint = endpoint
        self._seconds = seconds
        self._outcome = outcome
        self._silence: Silence | None = None
        self._read: Callable[[], Awaitable[bytes]] | None = None
        self._closed = False

    def start(self) -> Callable[[], Awaitable[bytes]]:
        """The read to await for each chunk; the silence is timed from now."""
        self._silence = Silence(self._response, self._seconds)
        # readany, not iter_any(): its iterator's __anext__ is one more coroutine per chunk.
        self._read = self._response.content.readany
        return self._read

    def heard(self) -> None:
        assert self._silence is not None
        self._silence.heard()
        outcome = self._outcome
        if outcome is not None and outcome.first_byte is None:
            outcome.first_byte = time.perf_counter()
            self._outcome = None  # the only use: no test per chunk from now on

    def failure(self, exc: Exception) -> Exception:
        """What to raise for what a read raised: the caller's error for a stalled or broken
        stream, anything else as it is."""
        if isinstance(exc, TimeoutError):
            return upstream_errors.stream_stalled(self._endpoint, self._seconds)
        if isinstance(exc, aiohttp.ClientError):
            return upstream_errors.stream_cut(self._endpoint)
        return exc

    def close(self, finished: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._silence is not None:
            self._silence.stop()
        # Closing (not releasing) an unfinished answer drops the connection, which is how the
        # model server learns to stop generating for a client that went away.
        if finished:
            self._response.release()
        else:
            self._response.close()

    def __aiter__(self) -> StreamReads:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        read = self._read if self._read is not None else self.start()
        try:
            chunk = await read()
        except Exception as exc:
            self.close(False)
            failure = self.failure(exc)
            if failure is exc:
                raise
            raise failure from None
        except BaseException:  # cancelled: the client went away
            self.close(False)
            raise
        if not chunk:
            self.close(True)
            raise StopAsyncIteration
        self.heard()
        return chunk

    async def aclose(self) -> None:
        self.close(False)
