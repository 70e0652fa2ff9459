"""The multiprocess files: a directory per server start, stale ones removed, dead workers'
live gauges forgotten while their counters stay in the sum."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from resource_server_async.accounting import metrics_files

# A worker that counts, raises a live gauge, and ends: with `exit` like a worker that stops
# (process_exited runs), with os._exit like one that is killed.
_WORKER = """
import os, sys
from prometheus_client import Counter, Gauge
from resource_server_async.accounting import metrics_files
Counter("served", "served").inc(2)
Gauge("busy", "busy", multiprocess_mode="livesum").set(5)
if sys.argv[1] == "killed":
    os._exit(0)
metrics_files.process_exited()
"""


def run_worker(directory: Path, how: str) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_WORKER), how],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
    )


def values(directory: Path) -> dict[str, float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))
    return {sample.name: sample.value for family in registry.collect() for sample in family.samples}


@pytest.fixture
def multiproc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare() sets PROMETHEUS_MULTIPROC_DIR; this puts the variable back after the test."""
    monkeypatch.delenv(metrics_files.ENV_NAME, raising=False)


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_each_server_start_gets_its_own_directory_and_stale_ones_go(
    tmp_path: Path, multiproc_env: None
) -> None:
    stale = tmp_path / str(dead_pid())
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"old values")
    not_ours = tmp_path / "notes"
    not_ours.mkdir()
    directory = metrics_files.prepare(tmp_path)
    assert directory == tmp_path / str(metrics_files.server_process_id())
    assert metrics_files.current_directory() == directory
    assert directory.is_dir() and not stale.exists() and not_ours.exists()


def test_a_worker_that_stops_leaves_its_counts_and_takes_its_live_gauges(tmp_path: Path) -> None:
    run_worker(tmp_path, "stopped")
    assert values(tmp_path).get("served_total") == 2
    assert "busy" not in values(tmp_path)


def test_a_killed_worker_is_forgotten_at_the_next_scrape(tmp_path: Path) -> None:
    run_worker(tmp_path, "killed")
    assert values(tmp_path)["busy"] == 5  # its last value would stay in the sum...
    metrics_files.forget_dead_workers(tmp_path)
    assert "busy" not in values(tmp_path)  # ...until a scrape notices it died
    assert values(tmp_path)["served_total"] == 2
