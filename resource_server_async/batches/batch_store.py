"""Batches of one principal in the database: create, describe, list, cancel.

Runs in a worker thread (database.in_thread). The worker (worker.py) does the rest.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from resource_server_async.auth.principal import Principal
from resource_server_async.batches import status
from resource_server_async.batches.files import own_file
from resource_server_async.batches.input_lines import SERVED_URLS
from resource_server_async.batches.owned import owned
from resource_server_async.batches.paging import cursor_page
from resource_server_async.batches.shapes import batch_object, cluster_batch_object
from resource_server_async.errors import GatewayError
from resource_server_async.models import Batch

_MAX_METADATA_PAIRS = 16
# The reference's list has no pages: its length is bounded here.
MAX_BATCHES_LISTED = 1000


def _checked_request(body: dict[str, Any]) -> tuple[str, str, str, dict[str, str] | None]:
    input_file_id = body.get("input_file_id")
    if not isinstance(input_file_id, str) or not input_file_id:
        raise GatewayError(
            400, "missing_required_parameter", "input_file_id is required.", param="input_file_id"
        )
    endpoint = body.get("endpoint")
    if endpoint not in SERVED_URLS:
        raise GatewayError(
            400,
            "invalid_endpoint",
            f"endpoint must be one of {', '.join(SERVED_URLS)}.",
            param="endpoint",
        )
    window = body.get("completion_window", "24h")
    if window not in status.COMPLETION_WINDOWS:
        raise GatewayError(
            400,
            "invalid_completion_window",
            f"completion_window must be one of {', '.join(status.COMPLETION_WINDOWS)}.",
            param="completion_window",
        )
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= _MAX_METADATA_PAIRS
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise GatewayError(
            400,
            "invalid_metadata",
            f"metadata must be an object of at most {_MAX_METADATA_PAIRS} string values.",
            param="metadata",
        )
    return input_file_id, str(endpoint), str(window), metadata


def check_active_limit(principal_id: str) -> None:
    """MAX_BATCHES_PER_USER: batches not finished yet, of both APIs."""
    active = Batch.objects.filter(principal_id=principal_id, status__in=status.ACTIVE).count()
    if active >= settings.MAX_BATCHES_PER_USER:
        raise GatewayError(
            429,
            "too_many_batches",
            f"You have {active} batches not finished; at most {settings.MAX_BATCHES_PER_USER} "
            "may be (MAX_BATCHES_PER_USER). Wait for one to end or cancel one.",
        )


def create(principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    input_file_id, endpoint, window, metadata = _checked_request(body)
    with transaction.atomic():
        file = own_file(principal.id, input_file_id)
        if file.purpose != "batch":
            raise GatewayError(
                400,
                "invalid_input_file",
                f"File {input_file_id!r} has purpose {file.purpose!r}, not 'batch'.",
                param="input_file_id",
            )
        if file.urls != [endpoint]:
            raise GatewayError(
                400,
                "endpoint_mismatch",
                f"The lines of {input_file_id!r} use {', '.join(file.urls)}; a batch for "
                f"{endpoint} needs every line's url to be {endpoint}.",
                param="endpoint",
            )
        check_active_limit(principal.id)
        now = timezone.now()
        batch = Batch.objects.create(
            id="batch_" + secrets.token_hex(12),
            principal_id=principal.id,
            principal=principal.as_dict(),
            endpoint=endpoint,
            input_file_id=file.id,
            completion_window=window,
            metadata=metadata,
            status=status.VALIDATING,
            created_at=now,
            expires_at=now + timedelta(seconds=status.COMPLETION_WINDOWS[window]),
            total=file.lines,
        )
    return batch_object(batch)


def own_batch(principal_id: str, batch_id: str) -> Batch:
    return owned(Batch, principal_id, batch_id, "batch")


def describe(principal_id: str, batch_id: str) -> dict[str, Any]:
    """One batch in the shape of the API that made it (the two share this route)."""
    batch = own_batch(principal_id, batch_id)
    return cluster_batch_object(batch) if batch.kind == "cluster" else batch_object(batch)


def listing(principal_id: str, after: str, limit: int) -> dict[str, Any]:
    """The caller's batches of the OpenAI API, a cursor page."""
    batches = Batch.objects.filter(principal_id=principal_id, kind="openai")
    return cursor_page(batches, after, limit, batch_object)


def cluster_listing(principal_id: str, state: str) -> list[dict[str, Any]]:
    """The caller's cluster batches in a given status (the reference's `?status=`), newest first;
    at most MAX_BATCHES_LISTED."""
    batches = Batch.objects.filter(principal_id=principal_id, kind="cluster")
    if state:
        batches = batches.filter(status=state)
    return [cluster_batch_object(b) for b in batches.order_by("-created_at")[:MAX_BATCHES_LISTED]]


def cluster_result(principal_id: str, batch_id: str) -> dict[str, Any]:
    """What the batch function returned (JSON); 400 while it runs or when it failed."""
    batch = own_batch(principal_id, batch_id)
    if batch.kind != "cluster":
        raise GatewayError(
            400,
            "not_a_cluster_batch",
            f"Batch {batch_id!r} was made with the Batches API: its answers are in its "
            "output_file_id (GET /resource_server/v1/files/{id}/content).",
        )
    if batch.status == status.FAILED:
        message = (batch.errors or {}).get("message", "the batch function failed")
        raise GatewayError(400, "batch_failed", f"Batch {batch_id!r} failed: {message}")
    if batch.status != status.COMPLETED:
        raise GatewayError(
            400, "batch_not_finished", f"Batch {batch_id!r} is {batch.status}; no result yet."
        )
    return dict(batch.result or {})


def create_cluster(
    principal: Principal,
    where: tuple[str, str, str],
    input_path: str,
    output_path: str,
) -> dict[str, Any]:
    """A cluster batch, pending until a worker submits its function."""
    cluster, framework, model = where
    with transaction.atomic():
        check_active_limit(principal.id)
        now = timezone.now()
        batch = Batch.objects.create(
            id=str(uuid.uuid4()),
            kind="cluster",
            principal_id=principal.id,
            principal=principal.as_dict(),
            cluster=cluster,
            framework=framework,
            model=model,
            endpoint="/v1/batches",
            input_path=input_path,
            output_path=output_path,
            status=status.PENDING,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.BATCH_TASK_TIMEOUT_SECONDS),
        )
    return {
        "batch_id": batch.id,
        "input_file": batch.input_path,
        "output_folder_path": batch.output_path or None,
        "task_ids": batch.task_ids,
        "status": batch.status,
    }


def cancel(principal_id: str, batch_id: str) -> dict[str, Any]:
    """Ask the worker to stop: lines not sent yet are not sent, finished ones are kept."""
    batch = own_batch(principal_id, batch_id)
    updated = Batch.objects.filter(id=batch.id, status__in=status.CANCELLABLE).update(
        status=status.CANCELLING, cancelling_at=timezone.now()
    )
    batch.refresh_from_db()
    if not updated and batch.status not in (status.CANCELLING, status.CANCELLED):
        raise GatewayError(
            409,
            "batch_not_cancellable",
            f"Batch {batch_id!r} is {batch.status}; only a validating or in_progress batch can "
            "be cancelled.",
            param="batch_id",
        )
    return batch_object(batch)
