"""bench/cpu_profile.py: a profile summed by part of the program, and counted per unit of work,
from a real cProfile of the gateway's own code."""

from __future__ import annotations

import cProfile
import os
import sys
import time
import urllib.request
from pathlib import Path

from bench.cpu_profile import Profile, by_part, top_functions
from bench.program_parts import part_of
from bench.traced_gateway import PROFILE_START, PROFILE_STOP
from resource_server_async.upstream.done_gate import DoneGate
from scripts import processes
from tests.servers import GatewayServer

CHUNK = b'data: {"choices": [{"delta": {"content": "hi"}, "finish_reason": null}]}\n\n'


def test_parts_are_packages_our_modules_and_c_code() -> None:
    site = f"{sys.prefix}/lib/python3.11/site-packages/aiohttp/streams.py"
    ours = str(processes.ROOT / "resource_server_async" / "streaming.py")

    assert part_of(site) == "aiohttp"
    assert part_of(ours) == "resource_server_async/streaming.py"
    assert part_of("~") == "C functions (builtins, methods)"


def test_a_profile_is_summed_by_part_and_counted_per_unit(tmp_path: Path) -> None:
    gate = DoneGate()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(400):
        gate.feed(CHUNK)
    profiler.disable()
    stats = tmp_path / "gate.prof"
    profiler.dump_stats(str(stats))
    profile = Profile("gate", "chunk", 400, stats)

    parts = dict(by_part(profile))
    functions = {label: calls for label, _, calls in top_functions(profile)}

    assert abs(sum(parts.values()) - 1.0) < 1e-9
    assert parts["resource_server_async/upstream/done_gate.py"] > 0
    (feed,) = [label for label in functions if label.endswith(" feed")]
    assert feed.startswith("resource_server_async/upstream/done_gate.py:")
    assert functions[feed] == 1.0  # one call per chunk


def test_the_traced_gateway_profiles_between_its_signals(tmp_path: Path) -> None:
    """The launcher's window: nothing is written before the stop signal, the statistics after."""
    stats = tmp_path / "window.prof"
    gateway = GatewayServer(
        tmp_path, env={"BENCH_CPROFILE": str(stats)}, server="bench.traced_gateway"
    ).start()
    try:
        assert gateway.process is not None
        os.kill(gateway.process.pid, PROFILE_START)
        for _ in range(5):
            urllib.request.urlopen(f"{gateway.url}/resource_server/health", timeout=10).read()
        written_before_stop = stats.exists()
        os.kill(gateway.process.pid, PROFILE_STOP)
        for _ in range(100):
            if stats.exists():
                break
            time.sleep(0.1)
    finally:
        gateway.stop()

    assert not written_before_stop
    profile = Profile("health", "request", 5, stats)
    assert any(part.startswith("resource_server_async") for part, _ in by_part(profile))
