"""Step 8 of a request: account for it once its answer has ended (records, metrics).

`account` hands the outcome to every sink the runtime built (`Runtime.accounting_sinks`): the
record writer's `submit`, and the metrics' `observe`. Sinks are quick and never block (the
writer only queues); one that fails is logged and the others still run. A record that waits
for what completes it (a compute stream's task result) is accounted once that is done; the
record writer's close waits for those (`settle`), so that SIGTERM does not lose them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from resource_server_async import runtime
from resource_server_async.accounting.outcome import RequestOutcome

__all__ = ["RequestOutcome", "account", "account_once_settled", "settle"]

logger = logging.getLogger(__name__)

# The `settling` futures of outcomes not accounted yet (each leaves the set when done).
_settling: set[asyncio.Future[None]] = set()


def account(outcome: RequestOutcome) -> None:
    """Hand a finished request to every sink; never raises."""
    try:
        sinks = runtime.current.accounting_sinks
    except RuntimeError:  # no runtime (a unit test of a view without the lifespan)
        return
    _hand(outcome, sinks)


def _hand(outcome: RequestOutcome, sinks: tuple[Callable[[RequestOutcome], None], ...]) -> None:
    for sink in sinks:
        try:
            sink(outcome)
        except Exception:
            logger.exception("accounting: sink %r failed (request %s)", sink, outcome.request_id)


def account_once_settled(outcome: RequestOutcome, settling: asyncio.Future[None]) -> None:
    """Account `outcome` once `settling` is done (held until then for `settle`), to the sinks
    of now: at shutdown the runtime is no longer current when the last ones settle."""
    try:
        sinks = runtime.current.accounting_sinks
    except RuntimeError:
        return
    _settling.add(settling)

    def settled(_: object) -> None:
        _settling.discard(settling)
        _hand(outcome, sinks)

    settling.add_done_callback(settled)


async def settle(timeout: float) -> None:
    """Wait, `timeout` seconds at most, for the records still waiting to be completed."""
    loop = asyncio.get_running_loop()
    pending = [f for f in _settling if not f.done() and f.get_loop() is loop]
    if pending and timeout > 0:
        await asyncio.wait(pending, timeout=timeout)
        await asyncio.sleep(0)  # their done callbacks (account) run before the writer closes
