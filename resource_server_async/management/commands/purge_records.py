"""`manage.py purge_records`: delete request records older than RECORD_RETENTION_DAYS."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from resource_server_async.models import RequestRecord


class Command(BaseCommand):
    help = "Delete request records past the retention period, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=settings.RECORD_RETENTION_DAYS,
            help="keep this many days (default RECORD_RETENTION_DAYS; 0 keeps everything)",
        )
        parser.add_argument("--batch", type=int, default=5000, help="rows per DELETE")

    def handle(self, *args: Any, days: int, batch: int, **options: Any) -> None:
        if days < 0 or batch < 1:
            raise CommandError("--days must be 0 or more and --batch at least 1")
        if days == 0:
            self.stdout.write("Retention is 0 (keep forever): nothing deleted.")
            return
        cutoff = timezone.now() - timedelta(days=days)
        deleted = 0
        # Batches by primary key: one long DELETE would hold locks the writer waits for.
        while True:
            ids = list(
                RequestRecord.objects.filter(received_at__lt=cutoff)
                .order_by("id")
                .values_list("id", flat=True)[:batch]
            )
            if not ids:
                break
            deleted += RequestRecord.objects.filter(id__in=ids).delete()[0]
        self.stdout.write(f"Deleted {deleted} request records received before {cutoff:%Y-%m-%d}.")
