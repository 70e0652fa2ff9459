"""Request records for the dashboard tests, written with the ORM as the accounting writer would."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count

from django.utils import timezone

from resource_server_async.accounting.rollup import rebuild
from resource_server_async.models import RequestRecord

_ids = count()


def record(
    *,
    ago: timedelta = timedelta(minutes=1),
    username: str = "alice@example.org",
    model: str = "model-a",
    cluster: str = "local",
    status: int = 200,
    error_code: str = "",
    duration: float = 0.2,
    ttft: float | None = 0.05,
    prompt: int = 10,
    completion: int = 5,
    project: str = "",
    now: datetime | None = None,
) -> RequestRecord:
    n = next(_ids)
    received = (now or timezone.now()) - ago
    return RequestRecord(
        request_key=f"req-{n}-{received.timestamp()}",
        request_id=f"req-{n}",
        received_at=received,
        route="cluster",
        operation="chat/completions",
        principal_id=f"id-{username}",
        username=username,
        project=project,
        cluster=cluster,
        framework="vllm",
        model=model,
        endpoint_slug=f"{cluster}-vllm-{model}",
        status=status,
        error_code=error_code,
        duration=duration,
        time_to_first_token=ttft,
        prompt_tokens=prompt if status < 400 else None,
        completion_tokens=completion if status < 400 else None,
        total_tokens=prompt + completion if status < 400 else None,
    )


def store(records: list[RequestRecord]) -> list[RequestRecord]:
    """Insert the records and make the hourly roll-up of the day and month charts again (by the
    migration's backfill: the writer's own path is tested in tests/accounting/test_rollup.py)."""
    stored = RequestRecord.objects.bulk_create(records)
    rebuild()
    return stored
