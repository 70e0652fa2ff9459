"""uvicorn with tracemalloc on, for the open-streams memory profile (bench/compute_streams.py).

Run in place of `python -m uvicorn` (same arguments). On SIGUSR1 the gateway collects garbage
and writes a snapshot of the Python heap to `$BENCH_TRACE_DIR/snapshot-<n>.trace` (renamed into
place once whole), so that the bench diffs the heap before and after opening streams. Tracing
slows the gateway: its memory is profiled here, its CPU and RSS in an untraced run.
"""

from __future__ import annotations

import gc
import os
import signal
import tracemalloc
from pathlib import Path
from types import FrameType

# One frame per allocation: the allocating line names the part (uvicorn, aiohttp, ours) at the
# lowest cost; started before uvicorn imports the application.
tracemalloc.start(1)
_taken = 0


def _snapshot(signum: int, frame: FrameType | None) -> None:
    global _taken
    gc.collect()
    directory = Path(os.environ["BENCH_TRACE_DIR"])
    path = directory / f"snapshot-{_taken}.trace"
    tracemalloc.take_snapshot().dump(str(path) + ".part")
    os.rename(str(path) + ".part", path)
    _taken += 1


def main() -> None:
    from uvicorn.main import main as uvicorn_main

    signal.signal(signal.SIGUSR1, _snapshot)
    uvicorn_main()


if __name__ == "__main__":
    main()
