"""The per-request log line: an accounting sink that writes one line per request, off the
request path.

`observe` (the sink) only appends the finished outcome to a bounded deque; a daemon thread
turns what has gathered into log lines REQUEST_LOG_INTERVAL seconds after the first of them,
so a request pays one append (and a flag check). With nothing to write the thread sleeps until
a line comes, instead of waking every interval: an idle worker does nothing. The line
carries ids, route, model, status, token counts and timings, never the credential, the prompt
or the answer (the outcome holds those only for the record writer).
Past REQUEST_LOG_QUEUE waiting lines, the oldest are dropped and counted (`dropped`).
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import deque
from typing import Any

from django.conf import settings

from resource_server_async.accounting.outcome import RequestOutcome

logger = logging.getLogger("gateway.requests")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def fields(outcome: RequestOutcome) -> dict[str, Any]:
    """The line's fields (each a key of the JSON object): what happened, never what was said."""
    return {
        "request_id": outcome.request_id,
        "principal_id": outcome.principal_id,
        "credential": outcome.credential,
        "api_key_id": outcome.api_key_id,
        "client_address": outcome.client_address,
        "route": outcome.route,
        "operation": outcome.operation,
        "cluster": outcome.cluster,
        "framework": outcome.framework,
        "model": outcome.model,
        "endpoint": outcome.endpoint_slug,
        "stream": outcome.stream,
        "status": outcome.status,
        "error_code": outcome.error_code,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "duration_ms": _ms(outcome.duration),
        "upstream_ms": _ms(outcome.upstream_duration),
        "first_token_ms": _ms(outcome.time_to_first_token),
    }


class RequestLog:
    """Gathers finished requests and logs them from a thread of its own."""

    def __init__(self, max_waiting: int, interval: float) -> None:
        self._waiting: deque[RequestOutcome] = deque()
        self._max_waiting = max_waiting
        self._interval = interval
        self.dropped = 0
        self._stop = threading.Event()
        # Set when a line waits (cleared before each flush), so the thread wakes only for work.
        self._gathered = threading.Event()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    @classmethod
    def shared(cls) -> RequestLog:
        """The process's one request log (every runtime of the process feeds it)."""
        global _shared
        with _shared_lock:
            if _shared is None:
                _shared = cls(settings.REQUEST_LOG_QUEUE, settings.REQUEST_LOG_INTERVAL)
                atexit.register(_shared.close)
            return _shared

    def observe(self, outcome: RequestOutcome) -> None:
        """The sink: one append (deque appends are atomic under the GIL)."""
        if len(self._waiting) >= self._max_waiting:
            self.dropped += 1
            return
        self._waiting.append(outcome)
        if not self._gathered.is_set():  # at most once per flush: Event.set takes a lock
            self._gathered.set()

    def flush(self) -> None:
        """Log every line gathered so far."""
        while self._waiting:
            outcome = self._waiting.popleft()
            line = fields(outcome)
            logger.info(
                "%s %s %s/%s %s %sms",
                line["request_id"],
                line["operation"],
                line["cluster"] or "-",
                line["model"] or "-",
                line["status"],
                line["duration_ms"],
                extra=line,
            )
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            logger.warning("request log: %d lines dropped (REQUEST_LOG_QUEUE full)", dropped)

    def close(self) -> None:
        """Stop the thread and log what is left (at shutdown)."""
        self._stop.set()
        self._gathered.set()
        self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while True:
            self._gathered.wait()
            if self._stop.wait(self._interval):  # the lines gather; close() flushes the rest
                return
            # Cleared before the flush: a line appended from here on sets it again, and one
            # appended before is flushed now.
            self._gathered.clear()
            try:
                self.flush()
            except Exception:  # a broken handler must not end the thread
                logging.getLogger(__name__).exception("request log: flush failed")


_shared: RequestLog | None = None
_shared_lock = threading.Lock()
