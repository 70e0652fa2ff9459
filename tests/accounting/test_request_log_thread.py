"""The request log's thread: it writes what gathered, and sleeps while nothing waits (an idle
worker must not wake every REQUEST_LOG_INTERVAL for nothing)."""

from __future__ import annotations

import logging
import time

import pytest

from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.accounting.request_log import RequestLog
from tests.waiting import wait_until


class CountingLog(RequestLog):
    """Counts the thread's flushes."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def outcome(request_id: str) -> RequestOutcome:
    return RequestOutcome(
        request_id=request_id,
        received_at=time.time(),
        started=time.perf_counter(),
        route="cluster",
        operation="chat/completions",
        status=200,
    )


def test_lines_are_written_after_they_gather_and_the_thread_sleeps_between(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.requests")
    log = CountingLog(max_waiting=100, interval=0.01)
    try:
        # Twenty intervals with nothing to write: no flush at all.
        time.sleep(0.2)
        assert log.flushes == 0

        log.observe(outcome("req-one"))
        log.observe(outcome("req-two"))
        wait_until(lambda: "req-two" in caplog.text)
        assert "req-one" in caplog.text
        flushed = log.flushes
        assert flushed >= 1

        # Written, the thread sleeps again; a later line wakes it once more.
        time.sleep(0.2)
        assert log.flushes == flushed
        log.observe(outcome("req-three"))
        wait_until(lambda: "req-three" in caplog.text)
    finally:
        log.close()


def test_close_writes_what_is_waiting(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.requests")
    log = RequestLog(max_waiting=100, interval=60.0)
    log.observe(outcome("req-at-shutdown"))
    log.close()
    assert "req-at-shutdown" in caplog.text
    assert not log._thread.is_alive()
