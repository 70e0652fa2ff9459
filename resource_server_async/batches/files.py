"""Files of one principal: an upload checked line by line and stored, listings, deletion.

Runs in a worker thread (database.in_thread): ORM calls and the copy to storage block.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson
from django.conf import settings
from django.db.models import Count, Sum

from resource_server_async.batches import status, storage
from resource_server_async.batches.input_lines import InputCheck, problems_message
from resource_server_async.batches.owned import owned
from resource_server_async.batches.paging import cursor_page
from resource_server_async.batches.shapes import file_object
from resource_server_async.errors import GatewayError
from resource_server_async.models import Batch, BatchFile

_COPY_CHUNK = 1024 * 1024


def _quota_check(principal_id: str, new_bytes: int) -> None:
    held = BatchFile.objects.filter(principal_id=principal_id).aggregate(
        files=Count("id"), bytes=Sum("bytes")
    )
    files, used = held["files"] or 0, held["bytes"] or 0
    if files + 1 > settings.BATCH_QUOTA_FILES:
        raise GatewayError(
            403,
            "file_quota_exceeded",
            f"You already store {files} files, the most allowed (BATCH_QUOTA_FILES); delete "
            "some first.",
            param="file",
        )
    if used + new_bytes > settings.BATCH_QUOTA_BYTES:
        raise GatewayError(
            403,
            "storage_quota_exceeded",
            f"This file ({new_bytes} bytes) and the {used} bytes you already store exceed "
            f"{settings.BATCH_QUOTA_BYTES} bytes (BATCH_QUOTA_BYTES); delete some files first.",
            param="file",
        )


def _first_line_of(path: Path, custom_id: str, before: int) -> int | None:
    """The first line before `before` of the file at `path` with this custom_id (a rescan: it
    runs only for a custom_id whose hash was seen before)."""
    with path.open("rb") as written:
        for number, raw in storage.numbered_lines(written):
            if number >= before:
                return None
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(line, dict) and line.get("custom_id") == custom_id:
                return number
    return None


def store_upload(
    principal_id: str,
    filename: str,
    source: IO[bytes],
    models_for: Callable[[str], frozenset[str]],
) -> dict[str, Any]:
    """Check every line of `source` while copying it to storage; 400 naming the lines that
    are wrong, else the new file's object. Only one line is in memory at a time."""
    storage.ensure_directory()
    file_id = storage.new_file_id()
    partial = storage.partial_path_of(file_id)
    size = 0
    try:
        with partial.open("wb") as target:

            def first_line_of(custom_id: str, before: int) -> int | None:
                target.flush()
                return _first_line_of(partial, custom_id, before)

            check = InputCheck(models_for, first_line_of)
            for number, raw in storage.numbered_lines(source):
                if number > settings.BATCH_FILE_MAX_LINES:
                    raise GatewayError(
                        400,
                        "too_many_lines",
                        f"The file has more than {settings.BATCH_FILE_MAX_LINES} lines "
                        "(BATCH_FILE_MAX_LINES); split it into several batches.",
                        param="file",
                    )
                check.feed(number, raw)
                target.write(raw + b"\n")
                size += len(raw) + 1
        if check.lines == 0:
            raise GatewayError(400, "empty_file", "The file has no lines.", param="file")
        if check.invalid:
            raise GatewayError(
                400,
                "invalid_batch_file",
                problems_message(check),
                param="file",
                info={
                    "invalid_lines": check.invalid,
                    "lines": [{"line": p.line, "message": p.message} for p in check.problems],
                },
            )
        _quota_check(principal_id, size)
        partial.rename(storage.path_of(file_id))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    file = BatchFile.objects.create(
        id=file_id,
        principal_id=principal_id,
        purpose="batch",
        filename=filename[:255],
        bytes=size,
        lines=check.lines,
        urls=sorted(check.urls),
    )
    return file_object(file)


def own_file(principal_id: str, file_id: str) -> BatchFile:
    return owned(BatchFile, principal_id, file_id, "file")


def describe(principal_id: str, file_id: str) -> dict[str, Any]:
    return file_object(own_file(principal_id, file_id))


def listing(principal_id: str, purpose: str, after: str, limit: int) -> dict[str, Any]:
    files = BatchFile.objects.filter(principal_id=principal_id)
    if purpose:
        files = files.filter(purpose=purpose)
    return cursor_page(files, after, limit, file_object)


def delete(principal_id: str, file_id: str) -> dict[str, Any]:
    file = own_file(principal_id, file_id)
    if Batch.objects.filter(input_file_id=file.id, status__in=status.ACTIVE).exists():
        raise GatewayError(
            409,
            "file_in_use",
            f"File {file_id!r} is the input of a batch that has not finished; cancel it first.",
            param="file_id",
        )
    storage.remove(file.id)
    file.delete()
    return {"id": file_id, "object": "file", "deleted": True}
