"""The Compute stand-in (bench/compute_standin.py) started in its own process for a test module."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bench import compute_standin
from scripts import processes
from tests.servers import ROOT, free_port


@contextlib.contextmanager
def running_standin(log: Path, endpoints: list[str], env: dict[str, str]) -> Iterator[str]:
    """The stand-in's URL while it runs, with `endpoints` online."""
    port = free_port()
    process = processes.start(compute_standin.command(port, endpoints), log, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_http(f"{url}/standin/health", process=process)
        yield url
    finally:
        processes.stop(process)
