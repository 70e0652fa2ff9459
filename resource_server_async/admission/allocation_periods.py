"""The period an allocation is in: month, week or day, starting at UTC midnight of its start day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from resource_server_async.admission.allocation_ledger import Account
from resource_server_async.catalog.projects import AllocationRule


def period_bounds(period: str, start_day: int, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the period containing `now` (aware, UTC). A month starts on day
    `start_day` (1-28, so every month has it); a week on ISO weekday `start_day` (1 = Monday)."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight, midnight + timedelta(days=1)
    if period == "week":
        back = (midnight.isoweekday() - start_day) % 7
        start = midnight - timedelta(days=back)
        return start, start + timedelta(days=7)
    start = midnight.replace(day=start_day)
    if start > midnight:
        start = _add_months(start, -1)
    return start, _add_months(start, 1)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return moment.replace(year=index // 12, month=index % 12 + 1)


# An account outlives its period by this much: a request received just before the end is
# still charged to it when it ends.
_ACCOUNT_MARGIN_SECONDS = 86400


def account_for(rule: AllocationRule, now: datetime, prefix: str) -> Account:
    """The account of `rule`'s period containing `now` (its key names the period's start)."""
    start, end = period_bounds(rule.period, rule.start_day, now)
    return Account(
        f"{prefix}{rule.id}:{int(start.timestamp())}",
        rule.tokens,
        rule.gpu_seconds,
        end.timestamp() + _ACCOUNT_MARGIN_SECONDS,
    )
