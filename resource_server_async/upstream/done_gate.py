"""Holds an OpenAI-style stream's `data: [DONE]` until the stream is known to be whole."""

from __future__ import annotations

import re

DONE_EVENT = b"data: [DONE]\n\n"
# OpenAI-compatible servers end these operations' streams with `data: [DONE]`; one that ends
# without it, or without a chunk that has a finish reason, was cut off, and the client must
# hear so rather than take a partial answer as whole. The relay (inference/) and the Globus
# Compute stream (endpoints/) both need it, hence it lives here, below both.
DONE_TERMINATED = frozenset({"chat/completions", "completions"})

# A finish reason is a string ("stop", "length", "tool_calls"); unfinished chunks say null.
# Escaped quotes inside a JSON string (`\"finish_reason\"`) cannot match.
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"')
# What nearly every chunk of a stream says until its last: when each key in the bytes is this,
# none can be a finish reason, and two counts (~0.4k instructions) spare the regex (~2k).
_KEY = b'"finish_reason"'
_UNFINISHED = b'"finish_reason":null'
_FINISH_CARRY = 24  # longer than the longest match, for a key split across two chunks
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n")
# Framing holds at most the start of one event; a longer one is passed on before its end so
# that a server cannot make the gateway buffer without bound.
_MAX_PENDING = 1024 * 1024


def _end_of_last_event(buffer: bytes) -> int:
    """The index just past the last blank line in `buffer`, or -1 when there is none."""
    lf = buffer.rfind(b"\n\n")
    crlf = buffer.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else -1, crlf + 4 if crlf >= 0 else -1)


def _is_done(event: bytes) -> bool:
    line = event.strip()
    return line.startswith(b"data:") and line[5:].strip() == b"[DONE]"


class DoneGate:
    """Frames SSE bytes into whole events, takes `data: [DONE]` out of them, and notes
    whether a chunk with a finish reason went by. The relay sends `[DONE]` itself, and only
    when both were seen (`whole`); a stream cut off, or ended with `[DONE]` but without its
    final chunk, gets an error event instead, which clients read as a failure.

    Cheap on the hot path: a chunk of whole events is passed on as it is (else one `rfind`
    frames it), two counts per chunk until the finish reason is seen (the regex only for a
    chunk with a key that does not say null), and event splitting only for the one chunk that
    holds `[DONE]`.
    """

    __slots__ = ("_carry", "_pending", "done", "finished")

    def __init__(self) -> None:
        self._pending = b""
        self._carry = b""
        self.finished = False  # a finish reason was seen
        self.done = False  # `data: [DONE]` was seen; nothing after it is passed on

    @property
    def whole(self) -> bool:
        return self.done and self.finished

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to pass on now: the complete events so far, without `[DONE]`."""
        if self.done:
            return b""
        # A slice, not endswith: in 3.11 bytes methods parse their arguments from a tuple
        # (200 instructions less per chunk, callgrind on DoneGate.feed alone).
        whole = chunk[-2:] == b"\n\n"  # the read ends with its last event
        if not self.finished:
            scanned = self._carry + chunk if self._carry else chunk
            if scanned.count(_KEY) != scanned.count(_UNFINISHED) and _FINISH.search(scanned):
                self.finished = True
            elif whole or chunk.endswith(b"\r\n\r\n"):
                self._carry = b""  # no key is cut at the end of an event
            else:
                self._carry = scanned[-_FINISH_CARRY:]
        # The usual read is whole events with nothing held: passed on as `_frame` would.
        ready = chunk if whole and not self._pending else self._frame(chunk)
        # find, not `in`: CPython 3.11's `bytes in bytes` first tries its operand as an int
        # and formats the TypeError it raises (about 2,000 instructions per chunk, callgrind).
        if ready.find(b"[DONE]") >= 0:
            ready = self._until_done(ready)
        return ready

    def _frame(self, chunk: bytes) -> bytes:
        """The complete events of what is held and `chunk`; the rest is held."""
        buffer = self._pending + chunk if self._pending else chunk
        end = _end_of_last_event(buffer)
        if end < 0:
            if len(buffer) > _MAX_PENDING:
                self._pending = b""
                return buffer
            self._pending = buffer
            return b""
        ready, self._pending = buffer[:end], buffer[end:]
        return ready

    def _until_done(self, ready: bytes) -> bytes:
        events: list[bytes] = []
        start = 0
        for boundary in _EVENT_END.finditer(ready):
            event = ready[start : boundary.end()]
            start = boundary.end()
            if _is_done(event):
                self.done = True
                self._pending = b""
                break
            events.append(event)
        return b"".join(events)

    def end(self) -> None:
        """The server closed the stream: a last `[DONE]` without its blank line still counts
        (any other unfinished event is dropped, as SSE clients drop it)."""
        if not self.done and _is_done(self._pending):
            self.done = True
        self._pending = b""
