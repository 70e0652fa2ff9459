"""Where file bytes live: one file per upload or output under BATCH_STORAGE_DIR, never in the
database."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from django.conf import settings


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def path_of(file_id: str) -> Path:
    # Ids are made here (new_file_id) and looked up in the database before any path is built.
    return Path(settings.BATCH_STORAGE_DIR) / f"{file_id}.jsonl"


def partial_path_of(file_id: str) -> Path:
    """Where a file is written before it is complete (renamed to `path_of` when it is)."""
    return Path(settings.BATCH_STORAGE_DIR) / f"{file_id}.part"


def ensure_directory() -> None:
    Path(settings.BATCH_STORAGE_DIR).mkdir(parents=True, exist_ok=True)


def remove(file_id: str) -> None:
    path_of(file_id).unlink(missing_ok=True)
    partial_path_of(file_id).unlink(missing_ok=True)


def numbered_lines(source: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based number, bytes without the newline) of each line; a final newline ends none."""
    for number, raw in enumerate(source, start=1):
        yield number, raw.rstrip(b"\r\n")
