"""`manage.py purge_records`: delete request records older than RECORD_RETENTION_DAYS, and the
hourly roll-up older than ROLLUP_RETENTION_DAYS."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Model
from django.utils import timezone

from resource_server_async.models import LatencyHour, RequestRecord, UsageDay, UsageHour


class Command(BaseCommand):
    help = "Delete request records (and the hourly roll-up) past their retention, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=settings.RECORD_RETENTION_DAYS,
            help="keep this many days of records (default RECORD_RETENTION_DAYS; 0: forever)",
        )
        parser.add_argument(
            "--rollup-days",
            type=int,
            default=settings.ROLLUP_RETENTION_DAYS,
            help="keep this many days of the roll-up, at least --days (default "
            "ROLLUP_RETENTION_DAYS; 0: forever)",
        )
        parser.add_argument("--batch", type=int, default=5000, help="rows per DELETE")

    def handle(self, *args: Any, days: int, rollup_days: int, batch: int, **options: Any) -> None:
        if days < 0 or rollup_days < 0 or batch < 1:
            raise CommandError("--days and --rollup-days must be 0 or more, --batch at least 1")
        now = timezone.now()
        # The roll-up is not touched with the records: its hours keep their sums (the
        # dashboard's history) until they pass its own retention.
        if days == 0:
            self.stdout.write("Retention is 0 (keep forever): no record deleted.")
        else:
            cutoff = now - timedelta(days=days)
            deleted = _purge(RequestRecord, "received_at", cutoff, batch)
            self.stdout.write(
                f"Deleted {deleted} request records received before {cutoff:%Y-%m-%d}."
            )
        # Never shorter than the records': every hour of records kept keeps its roll-up.
        rollup_days = max(rollup_days, days) if rollup_days and days else 0
        if rollup_days:
            cutoff = now - timedelta(days=rollup_days)
            rows = _purge(UsageHour, "hour", cutoff, batch) + _purge(
                LatencyHour, "hour", cutoff, batch
            )
            # A day is kept while any of its hours is.
            day = cutoff.replace(hour=0, minute=0, second=0, microsecond=0)
            rows += _purge(UsageDay, "day", day, batch)
            self.stdout.write(f"Deleted {rows} roll-up rows of hours before {cutoff:%Y-%m-%d}.")


def _purge(model: type[Model], field: str, cutoff: datetime, batch: int) -> int:
    """Batches by primary key: one long DELETE would hold locks the writer waits for."""
    deleted = 0
    manager = model._default_manager
    while True:
        ids = list(
            manager.filter(**{f"{field}__lt": cutoff})
            .order_by("pk")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return deleted
        deleted += manager.filter(pk__in=ids).delete()[0]
