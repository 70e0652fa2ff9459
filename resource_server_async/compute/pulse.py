"""A streaming task's sign of life: while its stream relays chunks, its result is not polled for.

A streaming task's result is needed only once its stream has ended (the function returns after
its last chunk), yet the result poller asked for it on every interval all along: a 200-chunk
stream made 30-50 status calls for nothing. The stream beats its pulse on each chunk from the
side channel; the poller leaves the task out while the last beat is recent, and asks again once
the stream has ended, or gone quiet for QUIET_SECONDS (the function may have died mid-stream:
its failure then comes back as the task's result, as before). Before its first chunk a task is
polled as any other, so a function that fails at once is seen at once.
"""

from __future__ import annotations

import time

# A stream silent this long (s) is polled again. Model servers send tokens every few tens of
# milliseconds once they stream; a longer pause costs only the polls it would have cost before.
QUIET_SECONDS = 2.0


class StreamPulse:
    """Told by the stream; read by the executor's poller."""

    __slots__ = ("_ended", "_last")

    def __init__(self) -> None:
        self._last: float | None = None
        self._ended = False

    def beat(self) -> None:
        """A chunk arrived from the side channel."""
        self._last = time.monotonic()

    def end(self) -> None:
        """The stream is over (its end, an error, or its client went away): its result is
        wanted now."""
        self._ended = True

    def live(self, now: float, quiet: float = QUIET_SECONDS) -> bool:
        """Whether the stream is relaying (beat within `quiet` s of `now`, time.monotonic())."""
        last = self._last
        return not self._ended and last is not None and now - last < quiet
