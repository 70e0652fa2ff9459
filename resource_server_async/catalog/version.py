"""The catalog's version counter: one row, bumped in the transaction of every catalog change.

Workers compare this number, not timestamps: `max(updated_at)` read across hosts misses an edit
whose host clock lags behind, and a deleted row leaves no timestamp at all. Every save and delete
of a catalog table through Django (admin, loaddata, management commands, signals.py) bumps it in
the same transaction as the change; an edit in raw SQL must bump it too (`UPDATE
resource_server_async_catalogversion SET version = version + 1`).
"""

from __future__ import annotations

import secrets

from django.db.models import F

VERSION_ROW = 1


def first_version() -> int:
    """Where a new counter starts: a random number, so that a counter made again (a database
    flushed or restored, its row deleted) never repeats a number a worker has already seen."""
    return secrets.randbits(48)


def bump(using: str = "default") -> None:
    """Add one to the counter (creating its row if it is missing)."""
    from resource_server_async.models import CatalogVersion

    rows = CatalogVersion.objects.using(using)
    if not rows.filter(pk=VERSION_ROW).update(version=F("version") + 1):
        rows.get_or_create(pk=VERSION_ROW, defaults={"version": first_version()})


def current_version(using: str = "default") -> int:
    from resource_server_async.models import CatalogVersion

    found = (
        CatalogVersion.objects.using(using)
        .filter(pk=VERSION_ROW)
        .values_list("version", flat=True)
        .first()
    )
    return found or 0
