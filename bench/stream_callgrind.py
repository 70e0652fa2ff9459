"""Instructions per relayed chunk of open streams on the direct path, counted by callgrind
(`--scenarios stream_instructions`).

CPU time per chunk on the shared 2-core machines moves by ±10 % between runs of the same code
(bench/compute_streams.py's figure); instructions do not. A gateway under callgrind relays open
streams from bench/stream_model.py (one token per INTERVAL each): FEW of them, then MANY, and
instrumentation is on for WINDOW seconds of steady relaying in each case only. The difference
of instructions over the difference of chunks the clients received is what one more relayed
chunk costs (the model server's read, the relay, the SSE write, the event loop's wake-ups); what
the worker does once a second whatever it relays (the catalog's check, the metrics' write, the
GC policy) cancels out, and the streams' opening is not counted. Callgrind counts user space
only: the kernel's share of each read and write is not in it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

from bench import callgrind
from bench.compute_streams import pool_for, stream_body
from bench.stream_driver import StreamClient, Tally, close_all, open_streams, post_request

if TYPE_CHECKING:
    from bench.run import Report

FEW, MANY = 10, 40
INTERVAL = 0.2  # 50 then 200 chunks/s: what the gateway relays under callgrind, ~50x slower
WARM_SECONDS = 5.0  # after the streams opened: pools, caches and the first tokens out of it
WINDOW = 20.0


def _relay_in_background(
    port: int, request: bytes, streams: int, tally: Tally
) -> tuple[threading.Event, threading.Thread]:
    """`streams` streams, opened and read on a loop of their own in a thread; set the event to
    close them."""
    stop = threading.Event()

    async def hold() -> None:
        clients: list[StreamClient] = await open_streams(port, request, streams, tally, streams)
        await asyncio.to_thread(stop.wait)
        close_all(clients)
        await asyncio.sleep(0.5)

    thread = threading.Thread(target=uvloop.run, args=(hold(),), daemon=True)
    thread.start()
    return stop, thread


def _window(pid: int, workdir: Path, tally: Tally, streams: int) -> tuple[int, int]:
    """Once `streams` are open and warm: the instructions of WINDOW seconds, and the chunks
    the clients received in them."""
    deadline = time.monotonic() + callgrind.STARTUP_SECONDS
    while tally.opened + tally.failed < streams and time.monotonic() < deadline:
        time.sleep(0.2)
    if tally.opened < streams:
        raise RuntimeError(f"{tally.opened} of {streams} streams opened ({tally.refusal})")
    time.sleep(WARM_SECONDS)

    def window() -> int:
        seen = tally.events
        time.sleep(WINDOW)
        return tally.events - seen

    return callgrind.counted(workdir, pid, window)


def bench(workdir: Path, report: Report) -> None:
    from bench.run import fake_backend, gateway

    if not callgrind.available():
        report.notes.append("stream instructions: valgrind is not installed, not measured.")
        return
    workdir.mkdir(parents=True, exist_ok=True)
    relaying: list[tuple[threading.Event, threading.Thread]] = []
    counts: list[tuple[int, int]] = []
    with (
        fake_backend(workdir, "bench.stream_model") as model,
        gateway(
            workdir,
            "sqlite",
            model,
            pool_for(MANY),
            command_prefix=callgrind.prefix(workdir),
            startup_seconds=callgrind.STARTUP_SECONDS,
        ) as target,
    ):
        assert target.pid is not None
        tally = Tally()
        request = post_request(target.port, target.path, target.auth, stream_body(INTERVAL))
        try:
            for streams in (FEW, MANY):
                more = streams - tally.opened
                relaying.append(_relay_in_background(target.port, request, more, tally))
                counts.append(_window(target.pid, workdir, tally, streams))
        finally:
            for stop, thread in relaying:
                stop.set()
                thread.join(10)
    (few_instructions, few_chunks), (many_instructions, many_chunks) = counts
    per_chunk = (many_instructions - few_instructions) / max(1, many_chunks - few_chunks)
    report.add(
        "open streams (direct): instructions per relayed chunk (callgrind)",
        "",
        f"{per_chunk:,.0f}",
        f"{MANY} streams against {FEW}, one token per {INTERVAL * 1000:g} ms each: "
        f"{many_chunks:,} against {few_chunks:,} chunks in {WINDOW:g} s "
        f"({many_instructions / max(1, many_chunks):,.0f} and "
        f"{few_instructions / max(1, few_chunks):,.0f} instructions per chunk in all)",
    )
