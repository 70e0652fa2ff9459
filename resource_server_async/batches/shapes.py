"""Files and batches in OpenAI's shapes (what the official client parses)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from resource_server_async.models import Batch, BatchFile


def _unix(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def file_object(file: BatchFile) -> dict[str, Any]:
    return {
        "id": file.id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": _unix(file.created_at),
        "filename": file.filename,
        "purpose": file.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def batch_object(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": batch.errors,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file_id or None,
        "error_file_id": batch.error_file_id or None,
        "created_at": _unix(batch.created_at),
        "in_progress_at": _unix(batch.in_progress_at),
        "expires_at": _unix(batch.expires_at),
        "finalizing_at": _unix(batch.finalizing_at),
        "completed_at": _unix(batch.completed_at),
        "failed_at": _unix(batch.failed_at),
        "expired_at": _unix(batch.expired_at),
        "cancelling_at": _unix(batch.cancelling_at),
        "cancelled_at": _unix(batch.cancelled_at),
        "request_counts": {
            "total": batch.total,
            "completed": batch.completed,
            "failed": batch.failed,
        },
        "metadata": batch.metadata,
    }


def page(objects: Sequence[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A cursor page: the next one is asked with `after=<last_id>`."""
    return {
        "object": "list",
        "data": list(objects),
        "first_id": objects[0]["id"] if objects else None,
        "last_id": objects[-1]["id"] if objects else None,
        "has_more": has_more,
    }


def cluster_batch_object(batch: Batch) -> dict[str, Any]:
    """A cluster batch in the reference gateway's shape (its result: `.../result`)."""
    return {
        "batch_id": batch.id,
        "cluster": batch.cluster,
        "framework": batch.framework,
        "model": batch.model,
        "input_file": batch.input_path,
        "output_folder_path": batch.output_path or None,
        "task_ids": batch.task_ids,
        "status": batch.status,
        "created_at": str(batch.created_at),
        "error": (batch.errors or {}).get("message") if batch.status == "failed" else None,
    }
