"""The inference requests being answered now, in this process: a plain count, raised and lowered
by the capture (accounting/capture.py) around each request, its stream included, and copied
into the `gateway_requests_in_flight` gauge by the metrics fold once a second. A multiprocess
gauge written per request would cost two locked file writes each."""

from __future__ import annotations

count = 0


def enter() -> None:
    global count
    count += 1


def leave() -> None:
    global count
    count -= 1
