"""The server command's main loop (inference_gateway/serve.py): it wakes once a second, not ten
times, yet the Date header stays current and a SIGTERM still stops the server at once, with
one worker and with a supervisor of two."""

from __future__ import annotations

import signal
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.servers import GatewayServer
from tests.waiting import wait_until


def _date(server: GatewayServer) -> float:
    answer = httpx.get(f"{server.url}/resource_server/health", timeout=10)
    return parsedate_to_datetime(answer.headers["date"]).timestamp()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_date_header_moves_and_sigterm_stops_the_server(tmp_path: Path, workers: int) -> None:
    server = GatewayServer(tmp_path, workers=workers).start()
    try:
        first = _date(server)
        time.sleep(2.5)
        # Refreshed by the once-a-second tick (its second, not a stale start-up one).
        assert _date(server) >= first + 2
        assert abs(_date(server) - time.time()) <= 2
        process = server.process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        # Woken by the signal, not by a tick that never comes.
        wait_until(lambda: process.poll() is not None)
        assert process.returncode == 0
    finally:
        server.stop()
