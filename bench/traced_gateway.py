"""uvicorn with the open-streams bench's instruments (bench/compute_streams.py).

Run in place of `python -m uvicorn` (same arguments). With `BENCH_GC_LOG`, every full (gen2)
garbage collection appends its duration in ms to that file, one line each: a callback per
collection, cheap enough for the measured runs. With `BENCH_TRACE_DIR`, tracemalloc is on and
SIGUSR1 collects garbage and writes a snapshot of the Python heap to
`snapshot-<n>.trace` there (renamed into place once whole), so that the bench diffs the heap
before and after opening streams; tracing slows the gateway, so that run is only profiled.
With `BENCH_CPROFILE` (a file path), PROFILE_START turns cProfile on and PROFILE_STOP off,
writing its statistics there (renamed into place once whole): bench/cpu_profile.py's window.
"""

from __future__ import annotations

import cProfile
import gc
import os
import signal
import time
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

_TRACE_DIR = os.environ.get("BENCH_TRACE_DIR")
_GC_LOG = os.environ.get("BENCH_GC_LOG")
_CPROFILE = os.environ.get("BENCH_CPROFILE")
# Real-time signals: SIGUSR1 and SIGUSR2 belong to the heap snapshots and the GC probe.
PROFILE_START = signal.SIGRTMIN + 1
PROFILE_STOP = signal.SIGRTMIN + 2
if _TRACE_DIR:
    # One frame per allocation: the allocating line names the part (uvicorn, aiohttp, ours)
    # at the lowest cost; started before uvicorn imports the application.
    tracemalloc.start(1)
_taken = 0
_full_started = 0.0


def _snapshot(signum: int, frame: FrameType | None) -> None:
    global _taken
    assert _TRACE_DIR is not None
    gc.collect()
    path = Path(_TRACE_DIR) / f"snapshot-{_taken}.trace"
    tracemalloc.take_snapshot().dump(str(path) + ".part")
    os.rename(str(path) + ".part", path)
    _taken += 1


def _probe_frozen_garbage(signum: int, frame: FrameType | None) -> None:
    """What the frozen generation holds that is garbage (after streams closed): one thaw."""
    assert _GC_LOG is not None
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    with open(_GC_LOG + ".probe", "a") as log:
        log.write(f"frozen {frozen} garbage {collected} after {gc.get_freeze_count()}\n")


_profile = cProfile.Profile()


def _start_profile(signum: int, frame: FrameType | None) -> None:
    _profile.enable()


def _stop_profile(signum: int, frame: FrameType | None) -> None:
    assert _CPROFILE is not None
    _profile.disable()
    _profile.dump_stats(_CPROFILE + ".part")
    os.rename(_CPROFILE + ".part", _CPROFILE)
    _profile.clear()


def _time_full_collections(phase: str, info: dict[str, Any]) -> None:
    global _full_started
    if info["generation"] != 2:
        return
    if phase == "start":
        _full_started = time.perf_counter()
        return
    assert _GC_LOG is not None
    with open(_GC_LOG, "a") as log:
        # The pause first (what the bench reads); then what it freed, and the objects left
        # frozen beside it (0 during a thaw of api/gc_policy.py: it walks everything).
        log.write(
            f"{(time.perf_counter() - _full_started) * 1000:.1f} {info['collected']} "
            f"{gc.get_freeze_count()}\n"
        )


def main() -> None:
    from uvicorn.main import main as uvicorn_main

    if _TRACE_DIR:
        signal.signal(signal.SIGUSR1, _snapshot)
    if _GC_LOG:
        gc.callbacks.append(_time_full_collections)
        signal.signal(signal.SIGUSR2, _probe_frozen_garbage)
    if _CPROFILE:
        signal.signal(PROFILE_START, _start_profile)
        signal.signal(PROFILE_STOP, _stop_profile)
    uvicorn_main()


if __name__ == "__main__":
    main()
