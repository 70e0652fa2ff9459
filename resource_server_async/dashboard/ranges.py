"""The time ranges a page may show and their buckets: a fixed set, so the caller cannot grow
the work of a query (or the cache) by choosing a range."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import DateTimeField
from django.db.models.functions import Trunc


@dataclass(frozen=True)
class TimeRange:
    key: str
    label: str
    bucket: str  # Trunc kind: "minute" | "hour" | "day"
    step: timedelta
    buckets: int
    # The roll-up the range reads (dashboard/sources.py): "hour", "day", or "" for the records.
    rollup: str

    def starts(self, now: datetime) -> list[datetime]:
        """The start of every bucket, oldest first; the last one holds `now`."""
        last = _truncate(now, self.bucket)
        return [last - self.step * (self.buckets - 1 - i) for i in range(self.buckets)]

    def since(self, now: datetime) -> datetime:
        return self.starts(now)[0]

    def trunc(self, field: str = "received_at") -> Trunc:
        return Trunc(field, self.bucket, output_field=DateTimeField())

    def label_of(self, moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d" if self.bucket == "day" else "%Y-%m-%d %H:%M")


RANGES = {
    r.key: r
    for r in (
        TimeRange("hour", "last hour", "minute", timedelta(minutes=1), 60, ""),
        TimeRange("day", "last day", "hour", timedelta(hours=1), 24, "hour"),
        TimeRange("month", "last 30 days", "day", timedelta(days=1), 30, "day"),
    )
}
DEFAULT_RANGE = "day"


def range_of(key: str | None) -> TimeRange:
    return RANGES.get(key or DEFAULT_RANGE, RANGES[DEFAULT_RANGE])


def _truncate(moment: datetime, bucket: str) -> datetime:
    moment = moment.replace(second=0, microsecond=0)
    if bucket in ("hour", "day"):
        moment = moment.replace(minute=0)
    if bucket == "day":
        moment = moment.replace(hour=0)
    return moment
