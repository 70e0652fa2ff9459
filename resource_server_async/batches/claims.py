"""A worker's expiring claim on a batch: taken under a row lock, renewed, or taken over.

Runs in a worker thread. The claim is a compare-and-set on (claimed_by, claim_expires_at), so
that two workers never run one batch even where the database has no row locks (SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from resource_server_async.batches import status
from resource_server_async.models import Batch


def _free(now: datetime) -> Q:
    return Q(claim_expires_at__isnull=True) | Q(claim_expires_at__lt=now)


def claim_next(worker_id: str, seconds: float) -> Batch | None:
    """The oldest active batch nobody holds, now held by `worker_id` for `seconds`."""
    now = timezone.now()
    with transaction.atomic():
        candidates = (
            Batch.objects.select_for_update(skip_locked=True)
            .filter(_free(now), status__in=status.ACTIVE)
            .order_by("created_at")
        )
        for batch in candidates[:10]:
            taken = Batch.objects.filter(_free(now), pk=batch.pk).update(
                claimed_by=worker_id, claim_expires_at=now + timedelta(seconds=seconds)
            )
            if taken:
                batch.refresh_from_db()
                return batch
    return None


@dataclass(frozen=True, slots=True)
class Standing:
    """What the worker learns when it renews its claim."""

    status: str
    expires_at: datetime


def renew(
    batch_id: str, worker_id: str, seconds: float, completed: int, failed: int
) -> Standing | None:
    """Extend the claim and store the progress; None when the claim was lost."""
    held = Batch.objects.filter(pk=batch_id, claimed_by=worker_id).update(
        claim_expires_at=timezone.now() + timedelta(seconds=seconds),
        completed=completed,
        failed=failed,
    )
    if not held:
        return None
    state, expires_at = Batch.objects.values_list("status", "expires_at").get(pk=batch_id)
    return Standing(state, expires_at)


def move(batch_id: str, worker_id: str, to: str, **fields: object) -> bool:
    """Enter status `to` (with its timestamp) while holding the claim; a cancel asked meanwhile
    wins over in_progress."""
    changes: dict[str, object] = {"status": to, **fields}
    if to in status.TIMESTAMP_OF:
        changes[status.TIMESTAMP_OF[to]] = timezone.now()
    held = Batch.objects.filter(pk=batch_id, claimed_by=worker_id)
    if to == status.IN_PROGRESS:
        held = held.filter(status=status.VALIDATING)
    return bool(held.update(**changes))


def release(batch_id: str, worker_id: str) -> None:
    Batch.objects.filter(pk=batch_id, claimed_by=worker_id).update(
        claimed_by="", claim_expires_at=None
    )
