"""Relays a streaming Globus Compute task to its client: side-channel events become SSE.

The function POSTs the model server's SSE lines (blank lines dropped, several lines per POST)
to the side channel; the hub hands them here. The task's own result arrives through the
executor and is announced on the same stream ("finished"), so one wait watches both.
Whatever goes wrong before the first chunk is raised as the caller's HTTP error; after it, the
iterator raises and the pipeline ends the stream with an error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from resource_server_async.compute.base import ComputeError
from resource_server_async.compute.pulse import StreamPulse
from resource_server_async.endpoints.compute_outcomes import (
    compute_error,
    failure_error,
    note_function_timing,
    parse_result,
)
from resource_server_async.errors import GatewayError
from resource_server_async.streaming import (
    DATA,
    DONE,
    ERROR,
    FINISHED,
    StreamEvent,
    StreamHub,
    Subscription,
)
from resource_server_async.upstream.done_gate import DONE_EVENT, DONE_TERMINATED
from resource_server_async.upstream.errors import endpoint_info, stream_cut, where

if TYPE_CHECKING:
    from resource_server_async.accounting.outcome import RequestOutcome
    from resource_server_async.endpoints.base import BaseEndpoint

logger = logging.getLogger(__name__)

# A choice that says why it ended (a string, not null): the final chunk. A server that aborts a
# request may still end cleanly, even with [DONE] (llama.cpp's interrupt_requests), so without
# one the stream was cut, and the client must get an error event, not [DONE].
_FINISH_REASON = re.compile(rb'"finish_reason"\s*:\s*"')


class SSEAssembler:
    """Side-channel text back into SSE events: `event:`/`id:` lines wait for their `data:` line
    (posts may split them apart), `[DONE]` and comments are dropped."""

    def __init__(self) -> None:
        self._fields: list[str] = []

    def feed(self, text: str) -> bytes:
        if self._only_data_lines(text):
            # The usual post: `data:` lines only (one, or the batch the function gathered),
            # nothing waiting: each line an event as it is, without a pass per line.
            return (text.replace("\n", "\n\n") + "\n\n").encode()
        events: list[str] = []
        for raw_line in text.split("\n"):
            line = raw_line.rstrip("\r")
            if not line.strip() or line.startswith(":"):
                continue
            if line.startswith("data:"):
                if line[5:].strip() == "[DONE]":
                    self._fields.clear()
                    continue
                events.append("\n".join([*self._fields, line]) + "\n\n")
                self._fields.clear()
            elif line.startswith(("event:", "id:", "retry:")):
                self._fields.append(line)
            else:
                events.append(f"data: {line}\n\n")  # a bare JSON line
        return "".join(events).encode()

    def _only_data_lines(self, text: str) -> bool:
        """No field waits, and every line is a `data:` line other than `[DONE]`, none blank,
        none ending in a carriage return (string searches only: C loops, not Python ones)."""
        return (
            not self._fields
            and text.startswith("data:")
            and text.count("\ndata:") == text.count("\n")
            and "\r" not in text
            and "[DONE]" not in text
            and not text.endswith("\n")
        )


class _Finished(Exception):
    """The stream is over, normally."""


class ComputeStream:
    """One streaming task: its subscription, the task waiting for its result, and the relay."""

    def __init__(
        self,
        *,
        hub: StreamHub,
        subscription: Subscription,
        run: asyncio.Task[Any],
        endpoint: BaseEndpoint,
        operation: str,
        first_chunk_timeout: float,
        idle_timeout: float,
        outcome: RequestOutcome | None = None,
        result_wait: float = 0.0,
        pulse: StreamPulse | None = None,
    ) -> None:
        self._hub = hub
        self._subscription = subscription
        self._run = run
        self._endpoint = endpoint
        # Functions swallow the server's [DONE] (as deployed ones do); the gateway writes it
        # when the stream is done.
        self._terminator = DONE_EVENT if operation in DONE_TERMINATED else b""
        self._first_chunk_timeout = first_chunk_timeout
        self._idle_timeout = idle_timeout
        # The record's: the function's timing comes with the task's result, which may follow
        # the stream's end; it is awaited up to `result_wait` s after the answer has gone.
        self._outcome = outcome
        self._result_wait = result_wait
        self._whole = False
        self._assembler = SSEAssembler()
        self._relayed = False
        self._finish_seen = False
        self._first = b""
        self._ended = False
        self._closed = False
        self._announcement: asyncio.Task[Any] | None = None
        # Told of each chunk, so that the executor does not poll for the result meanwhile.
        self._pulse = pulse or StreamPulse()
        run.add_done_callback(self._announce_finish)

    def _announce_finish(self, run: asyncio.Task[Any]) -> None:
        if self._closed:
            return
        # Wakes the reader, which may be blocked on Redis in another call.
        self._announcement = asyncio.get_running_loop().create_task(
            self._hub.publish(self._subscription.task_id, StreamEvent(FINISHED), bounded=False)
        )

    async def start(self) -> None:
        """Wait for the first chunk; raise the caller's error if the stream cannot start."""
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._first_chunk_timeout
            while not self._first and not self._ended:
                remaining = deadline - loop.time()
                event = await self._next(remaining) if remaining > 0 else None
                if event is None:
                    raise self._silence(self._first_chunk_timeout, "the first chunk")
                try:
                    self._first = self._take(event)
                except _Finished:
                    self._first, self._ended, self._whole = self._terminator, True, True
        except BaseException:
            await self.close()
            raise

    async def events(self) -> AsyncIterator[bytes]:
        try:
            if self._first:
                yield self._first
            if self._ended:
                return
            while True:
                event = await self._next(self._idle_timeout)
                if event is None:
                    raise self._silence(self._idle_timeout, "the next chunk")
                try:
                    chunk = self._take(event)
                except _Finished:
                    self._whole = True
                    if self._terminator:
                        yield self._terminator
                    return
                if chunk:
                    yield chunk
        finally:
            await self.close()

    async def _next(self, timeout: float) -> StreamEvent | None:
        try:
            return await self._subscription.next(timeout)
        except Exception as exc:  # the hub (Redis) failed, not the model
            logger.error("stream hub: cannot read stream %s: %s", self._subscription.task_id, exc)
            raise GatewayError(
                503,
                "stream_hub_unavailable",
                "The gateway lost the stream's relay; try the request again.",
            ) from None

    def _take(self, event: StreamEvent) -> bytes:
        """SSE bytes for a data event (maybe none yet); raise _Finished or the caller's error."""
        if event.kind == DATA:
            self._pulse.beat()
            chunk = self._assembler.feed(event.text)
            self._relayed = self._relayed or bool(chunk)
            self._finish_seen = self._finish_seen or bool(_FINISH_REASON.search(chunk))
            return chunk
        if event.kind == DONE:
            self._check_whole()
            raise _Finished
        if event.kind == ERROR:
            raise failure_error(event.text, self._endpoint, None)
        if event.kind == FINISHED:
            self._check_result()
            self._check_whole()
            raise _Finished
        return b""  # the hub's own markers

    def _check_whole(self) -> None:
        """A stream that ends with [DONE] must have had its final chunk."""
        if self._terminator and not self._finish_seen:
            raise stream_cut(self._endpoint)

    def _check_result(self) -> None:
        """The task finished before the stream said done: was it a failure, or were the chunks
        lost on the way?"""
        if self._run.cancelled():
            raise GatewayError(502, "compute_task_failed", "The wait for the task was cancelled.")
        error = self._run.exception()
        if isinstance(error, ComputeError):
            raise compute_error(error, self._endpoint)
        if error is not None:
            raise GatewayError(502, "compute_task_failed", f"The task failed: {error}")
        answer = parse_result(self._run.result(), self._endpoint, None)
        if answer.get("status") == "error":
            raise failure_error(str(answer.get("error", "")), self._endpoint, None)
        if not self._relayed:
            raise GatewayError(
                502,
                "stream_not_received",
                f"The function serving {where(self._endpoint)} finished, but none of its "
                "streamed chunks reached the gateway. Ask the operator to check the endpoint's "
                "INTERNAL_STREAMING_SECRET and the gateway's STREAMING_SERVER_* settings.",
                info=endpoint_info(self._endpoint),
            )

    async def _await_timing(self) -> None:
        """The task's result, for the record (the answer is complete): at most result_wait s."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._run), self._result_wait)
        if self._run.done():
            self._note_timing(self._run)
        else:
            self._run.cancel()

    def _note_timing(self, run: asyncio.Task[Any]) -> None:
        if run.cancelled() or run.exception() is not None:
            return
        with contextlib.suppress(GatewayError):
            note_function_timing(parse_result(run.result(), self._endpoint, None), self._outcome)

    def _silence(self, seconds: float, waiting_for: str) -> GatewayError:
        return GatewayError(
            504,
            "stream_timeout",
            f"{where(self._endpoint).capitalize()} sent nothing for {seconds:g} s while the "
            f"gateway waited for {waiting_for}.",
            info=endpoint_info(self._endpoint, stream_task_id=self._subscription.task_id),
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pulse.end()
        if self._whole and self._outcome is not None:
            if self._run.done():
                self._note_timing(self._run)
            elif self._result_wait > 0:
                self._outcome.settling = asyncio.get_running_loop().create_task(
                    self._await_timing()
                )
        # Stops only this request's wait for the result; the executor goes on for the others.
        if self._outcome is None or self._outcome.settling is None:
            self._run.cancel()
        with contextlib.suppress(Exception):
            # Later POSTs for this task are refused, which tells the function to stop.
            await self._subscription.close()
        if self._announcement is not None and not self._announcement.done():
            self._announcement.cancel()
