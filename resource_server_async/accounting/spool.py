"""Records kept on disk while the database is down: JSON lines, one file per process.

Each process appends to its own file in RECORD_SPOOL_DIR (at most RECORD_SPOOL_MAX_BYTES).
Any process drains any file once its database is back: it takes the file's lock, renames it
(so appends start a new file), inserts its lines in batches and deletes it. Inserts ignore
records already written, so a drain cut short is simply done again. Every call runs in the
writer's thread; the lock (flock) keeps processes apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)

_SUFFIX = ".jsonl"
_CLAIMED = ".draining"


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._path = directory / f"records-{os.getpid()}-{os.urandom(4).hex()}{_SUFFIX}"

    def size(self) -> int:
        with contextlib.suppress(FileNotFoundError):
            return self._path.stat().st_size
        return 0

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Write rows until the file would pass its bound; the number written."""
        lines = [orjson.dumps(row) + b"\n" for row in rows]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._locked_file() as file:
                room = self.max_bytes - file.seek(0, os.SEEK_END)
                kept = 0
                for line in lines:
                    if len(line) > room:
                        break
                    room -= len(line)
                    kept += 1
                file.write(b"".join(lines[:kept]))
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            logger.error("records: cannot write the spool file %s: %s", self._path, exc)
            return 0
        return kept

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[Any]:
        """This process's file, locked; reopened if a drain renamed it while we waited."""
        while True:
            file = open(self._path, "ab")  # noqa: SIM115 (closed below or by the caller's with)
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX)
                if os.fstat(file.fileno()).st_ino == _inode(self._path):
                    break
            except BaseException:
                file.close()
                raise
            file.close()
        try:
            yield file
        finally:
            file.close()

    def drain(self, insert: Callable[[list[dict[str, Any]]], None], batch_size: int) -> int:
        """Insert every spooled record (every process's files); the number inserted. Raises
        (the file kept for the next attempt) if an insert fails."""
        if not self.directory.is_dir():
            return 0
        written = 0
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")) + sorted(
            self.directory.glob(f"*{_CLAIMED}")
        ):
            written += self._drain_file(path, insert, batch_size)
        return written

    def _drain_file(
        self, path: Path, insert: Callable[[list[dict[str, Any]]], None], batch_size: int
    ) -> int:
        try:
            file = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return 0  # another process took it
        with file:
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # being written or drained by another process
            if os.fstat(file.fileno()).st_ino != _inode(path):
                return 0
            claimed = path if path.name.endswith(_CLAIMED) else path.with_suffix(_CLAIMED)
            if claimed != path:
                os.rename(path, claimed)
            written = 0
            batch: list[dict[str, Any]] = []
            for line in file:
                if not line.strip():
                    continue
                try:
                    batch.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    continue  # a line cut by a crash mid-write
                if len(batch) >= batch_size:
                    insert(batch)
                    written, batch = written + len(batch), []
            if batch:
                insert(batch)
                written += len(batch)
            claimed.unlink()
        return written


def _inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return -1
