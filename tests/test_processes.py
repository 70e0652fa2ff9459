"""scripts/processes.py: the helpers with which the demo, the tests and the bench run servers."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from scripts import processes


def test_a_free_port_is_free_until_something_listens_on_it() -> None:
    port = processes.free_port()
    assert processes.port_is_free(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert not processes.port_is_free(port)


def test_start_writes_the_output_to_the_log_and_appends_when_asked(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    say = [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    processes.start(say, log).wait()
    processes.start(say, log, append=True, detached=True).wait()
    assert log.read_text().split() == ["out", "err", "out", "err"]
    processes.start(say, log).wait()
    assert log.read_text().split() == ["out", "err"]


def test_waiting_fails_at_once_when_the_process_exits(tmp_path: Path) -> None:
    process = processes.start([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "log")
    url = f"http://127.0.0.1:{processes.free_port()}/health"
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=f"process exited with 3 before {url} answered"):
        processes.wait_for_http(url, timeout=30, process=process)
    assert time.monotonic() - started < 10


def test_waiting_times_out_naming_the_last_answer() -> None:
    url = f"http://127.0.0.1:{processes.free_port()}/health"
    with pytest.raises(TimeoutError, match=f"{url} did not answer 200 within 0.3s: .*refused"):
        processes.wait_for_http(url, timeout=0.3)


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "log"
    process = processes.start([sys.executable, "-c", stubborn], log)
    assert processes.wait_until(lambda: "ready" in log.read_text(), 10, process)
    processes.stop(process, timeout=0.5)
    assert process.returncode == -9


def test_stop_leaves_a_finished_process_alone(tmp_path: Path) -> None:
    process = processes.start([sys.executable, "-c", "pass"], tmp_path / "log")
    process.wait()
    processes.stop(process)
    assert process.returncode == 0
