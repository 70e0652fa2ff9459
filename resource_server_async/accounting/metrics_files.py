"""Where the worker processes of one server keep their metric values, for prometheus_client.

Why the library's multiprocess mode rather than one registry per worker aggregated by hand: a
scrape reaches one worker, which can read every worker's values from the shared files (mmap,
no lock between processes, ~1 µs per update), and a worker that exits keeps its counts in the
sum. Aggregating registries would need a channel between workers and lose an exited one's counts.

The mode wants a directory that is empty when the server starts (old files would be summed in)
and `mark_process_dead` for each worker that exits (its live gauges must leave the sum). uvicorn
has no start-up hook in its supervisor, so each server start gets a directory of its own,
named after the supervising process (`--workers N`: the parent of the spawned workers; a
single-process server: itself). A worker that starts removes the directories of servers no
longer running; a scrape forgets the live gauges of workers that died without saying so.

Only stdlib at import: `prepare` must run before prometheus_client is imported.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_NAME = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client's file names: <type>[_<gauge mode>]_<pid>.db; live gauge modes start "live".
_LIVE_GAUGE_FILE = re.compile(r"^gauge_(live[a-z]*)_(\d+)\.db$")


def server_process_id() -> int:
    """The process that stands for this server start: uvicorn's supervisor for its spawned
    workers, or this process when it serves alone."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getpid()


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def prepare(base: Path) -> Path:
    """Make `base/<server process id>` this process's metric directory (PROMETHEUS_MULTIPROC_DIR)
    and remove those of servers no longer running. Call before prometheus_client is imported."""
    own = server_process_id()
    directory = base / str(own)
    directory.mkdir(parents=True, exist_ok=True)
    for entry in base.iterdir():
        stale = entry.name.isdigit() and int(entry.name) != own and not is_running(int(entry.name))
        if stale and entry.is_dir():
            # Workers of one server start at once and may race to remove the same one.
            shutil.rmtree(entry, ignore_errors=True)
    os.environ[ENV_NAME] = str(directory)
    return directory


def current_directory() -> Path | None:
    """The directory of this process's metric files, or None in single-registry mode."""
    value = os.environ.get(ENV_NAME)
    return Path(value) if value else None


def forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges (in flight, pending) of workers that ended without `process_exited`
    (killed, crashed): their last values would stay in the sum forever."""
    from prometheus_client import multiprocess

    dead: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(directory):
            match = _LIVE_GAUGE_FILE.match(entry)
            if match and not is_running(int(match.group(2))):
                dead.add(int(match.group(2)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(directory))


def process_exited() -> None:
    """This worker stops: its live gauges leave the sum (its counters stay, as they should)."""
    directory = current_directory()
    if directory is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), str(directory))
