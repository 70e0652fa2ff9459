"""The allocations' books: the ledger admission charges, and the background task that keeps it
true to the request records (durable: a Redis that lost its data is rebuilt from them).

The reconciler runs once when the books open, then every ALLOCATIONS_RECONCILE_SECONDS, and
sooner when admission met a new account (a new period, or a lost count). Per allocation it asks
the database for one or two sums, in its own thread; never on the request's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from django.db import close_old_connections, connections

from resource_server_async.admission.allocation_ledger import (
    Account,
    Ledger,
    Spent,
    build_ledger,
)
from resource_server_async.admission.allocation_periods import account_for, period_bounds
from resource_server_async.admission.allocation_records import spent_in_records
from resource_server_async.catalog.projects import AllocationRule

logger = logging.getLogger(__name__)

NOTHING = Spent(0, 0.0)
# Rules whose accounts are remembered (a rule edited in the admin is a new rule).
_MAX_CACHED = 10_000


def _sums(rule: AllocationRule, now: datetime, created: float | None) -> tuple[Spent, Spent]:
    """(records before `created`, records of the whole period) of the rule's current period."""
    close_old_connections()
    start, end = period_bounds(rule.period, rule.start_day, now)
    whole = spent_in_records(rule, start, end)
    if created is None:
        return NOTHING, whole
    before = spent_in_records(rule, start, datetime.fromtimestamp(created, UTC))
    return before, whole


class AllocationBooks:
    """Built by the runtime on first use, in the serving loop; closed with it."""

    def __init__(self, ledger: Ledger, *, prefix: str, interval: float) -> None:
        self.ledger = ledger
        self.prefix = prefix
        self.interval = interval
        self._wake = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="allocations")
        self._task: asyncio.Task[None] | None = None
        # Each rule's current account, until its period ends (saves the date arithmetic).
        self._accounts: dict[AllocationRule, tuple[Account, float, float]] = {}
        self.reconciled = 0  # passes done

    def account(self, rule: AllocationRule, now: float) -> Account:
        """The account of `rule`'s period containing `now` (epoch seconds)."""
        return self.period(rule, now)[0]

    def period(self, rule: AllocationRule, now: float) -> tuple[Account, float, float]:
        """The account of `rule`'s period containing `now`, and the period's bounds (epoch s)."""
        known = self._accounts.get(rule)
        if known is not None and known[1] <= now < known[2]:
            return known
        moment = datetime.fromtimestamp(now, UTC)
        account = account_for(rule, moment, self.prefix)
        start, end = period_bounds(rule.period, rule.start_day, moment)
        if len(self._accounts) >= _MAX_CACHED:
            self._accounts.clear()  # rules edited many times: start afresh
        known = self._accounts[rule] = (account, start.timestamp(), end.timestamp())
        return known

    @classmethod
    def from_settings(cls) -> AllocationBooks:
        from django.conf import settings

        return cls(
            build_ledger(),
            prefix=settings.ALLOCATIONS_REDIS_PREFIX,
            interval=settings.ALLOCATIONS_RECONCILE_SECONDS,
        )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """A new account was met: rebuild it soon rather than at the next interval."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:
                # A database or Redis hiccup: the counts stay as they are until the next pass.
                logger.exception("allocations: reconcile failed; trying again later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    async def reconcile(self) -> None:
        """One pass over every allocation of the catalog."""
        from resource_server_async.catalog.snapshot import catalog

        loop = asyncio.get_running_loop()
        for rules in list(catalog.snapshot.projects.allocations.values()):
            for rule in rules:
                now = time.time()
                moment = datetime.fromtimestamp(now, UTC)
                account = account_for(rule, moment, self.prefix)
                seen = (await self.ledger.read([account.key]))[0]
                created = None if seen is None or seen.built else seen.created
                before, whole = await loop.run_in_executor(
                    self._thread, _sums, rule, moment, created
                )
                await self.ledger.reconcile(account, seen, before, whole, now)
        self.reconciled += 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.ledger.close()
        await asyncio.get_running_loop().run_in_executor(self._thread, connections.close_all)
        self._thread.shutdown(wait=False)
