"""Batches: lines per second through the fake backend with one worker, and peak memory (RSS) of
the worker and the gateway for a 1,000,000-line input (`python -m bench.run --scenarios batches`).

The gateway (upload) and one `manage.py batch_worker` run on PostgreSQL + Redis, the worker pinned
to the gateway's core. Throughput is timed from the batch's creation to its `completed` status,
with the worker already running (its start-up is not a batch's cost). The 1,000,000-line batch
runs for MEMORY_SECONDS while RSS is sampled, then is cancelled, which writes the output file of
what finished (streamed from the database) before the last sample.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from openai import OpenAI

from bench.processes import cpu_seconds, python, rss_megabytes, start
from bench.run import (
    DEFAULT_DATABASE,
    GATEWAY_CORE,
    MODEL,
    Report,
    Target,
    gateway,
)
from scripts.processes import wait_until

THROUGHPUT_LINES = 20_000
BIG_LINES = 1_000_000
MEMORY_SECONDS = 30.0
# Goals of the issue.
LINES_PER_SECOND_GOAL = 2_000
PEAK_MB_GOAL = 200.0

OVERRIDES = {
    "BATCH_FILE_MAX_LINES": str(BIG_LINES),
    "BATCH_FILE_MAX_BYTES": str(512 * 1024 * 1024),
    "BATCH_QUOTA_BYTES": str(4 * 1024**3),
    "BATCH_POLL_SECONDS": "0.05",
    "BATCH_CONCURRENCY_PER_ENDPOINT": "64",
    "BATCH_MAX_IN_FLIGHT": "64",
    "LOG_LEVEL": "WARNING",
}


def write_input(path: Path, lines: int) -> Path:
    """Short chat lines, written a line at a time."""
    with path.open("wb") as out:
        for n in range(lines):
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"say {n}"}]}
            line = {"custom_id": f"l{n}", "method": "POST", "url": "/v1/chat/completions"}
            out.write(orjson.dumps({**line, "body": body}) + b"\n")
    return path


def _client(target: Target) -> OpenAI:
    key = target.auth.removeprefix("Bearer ")
    return OpenAI(
        base_url=f"http://127.0.0.1:{target.port}/resource_server/v1",
        api_key=key,
        max_retries=0,
        timeout=600,
    )


class PeakSampler:
    """The highest RSS (MB) of some processes, sampled every 0.2 s in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.peaks = {name: rss_megabytes(pid) for name, pid in pids.items()}
        self._pids = pids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            for name, pid in self._pids.items():
                self.peaks[name] = max(self.peaks[name], rss_megabytes(pid))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _until(condition: Callable[[], bool], timeout: float) -> None:
    if not wait_until(condition, timeout, interval=0.1):
        raise TimeoutError(f"batch bench: waited {timeout:g} s")


def _batch(api: OpenAI, path: Path) -> str:
    with path.open("rb") as data:
        uploaded = api.files.create(file=(path.name, data), purpose="batch")
    return api.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id


def bench_batches(workdir: Path, backend_port: int, report: Report) -> None:
    print("\n== batches: one worker, PostgreSQL + Redis, the fake backend", flush=True)
    base = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
    with gateway(workdir, "postgres", backend_port, OVERRIDES, f"{base}_batches") as target:
        assert target.env is not None and target.pid is not None
        api = _client(target)
        worker = start(
            "batch-worker",
            [python(), "manage.py", "batch_worker"],
            target.env,
            workdir / "batch-worker.log",
            GATEWAY_CORE,
        )
        try:
            _throughput(api, worker.pid, workdir, report)
            _memory(api, {"worker": worker.pid, "gateway": target.pid}, workdir, report)
        finally:
            worker.stop()


def _throughput(api: OpenAI, worker_pid: int, workdir: Path, report: Report) -> None:
    path = write_input(workdir / "throughput.jsonl", THROUGHPUT_LINES)
    cpu_before = cpu_seconds(worker_pid)
    began = time.perf_counter()
    batch_id = _batch(api, path)
    created = time.perf_counter()
    _until(lambda: api.batches.retrieve(batch_id).status == "completed", 600)
    seconds = time.perf_counter() - created
    cpu = cpu_seconds(worker_pid) - cpu_before
    rate = THROUGHPUT_LINES / seconds
    counts = api.batches.retrieve(batch_id).request_counts
    report.check(
        "batches",
        f"lines/s with one worker >= {LINES_PER_SECOND_GOAL:,} (reported as s per 1,000 lines)",
        1000 / rate,
        1000 / LINES_PER_SECOND_GOAL,
        "s",
    )
    report.add(
        f"[batches] {THROUGHPUT_LINES:,} chat lines, one worker",
        f"upload {created - began:.1f} s",
        f"{rate:,.0f} lines/s",
        f"worker CPU {cpu / THROUGHPUT_LINES * 1000:.3f} ms/line; counts {counts}",
    )


def _memory(api: OpenAI, pids: dict[str, int], workdir: Path, report: Report) -> None:
    path = write_input(workdir / "big.jsonl", BIG_LINES)
    idle = {name: rss_megabytes(pid) for name, pid in pids.items()}
    with PeakSampler(pids) as sampler:
        began = time.perf_counter()
        batch_id = _batch(api, path)
        uploaded = time.perf_counter() - began
        running = time.perf_counter()
        time.sleep(MEMORY_SECONDS)  # the load runs meanwhile; this is the sampling window
        done = api.batches.retrieve(batch_id).request_counts
        api.batches.cancel(batch_id)
        _until(lambda: api.batches.retrieve(batch_id).status == "cancelled", 600)
        ran = time.perf_counter() - running
    worker_peak = sampler.peaks["worker"]
    report.check(
        "batches",
        f"worker peak RSS on a {BIG_LINES:,}-line input <= {PEAK_MB_GOAL:.0f} MB",
        worker_peak,
        PEAK_MB_GOAL,
        "MB",
    )
    report.add(
        f"[batches] {BIG_LINES:,}-line input ({path.stat().st_size / 2**20:.0f} MB)",
        f"upload {uploaded:.1f} s",
        f"worker peak {worker_peak:.0f} MB",
        f"idle {idle['worker']:.0f} MB; {done.completed if done else 0:,} lines in "
        f"{MEMORY_SECONDS:g} s, then cancelled and finalized ({ran:.0f} s in all); gateway "
        f"peak during the upload {sampler.peaks['gateway']:.0f} MB (idle {idle['gateway']:.0f})",
    )
