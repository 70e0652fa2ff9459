"""Step 8 of a request: account for it once its answer has ended (records, metrics).

`account` hands the outcome to every sink the runtime built (`Runtime.accounting_sinks`): the
record writer's `submit`, and the metrics' `observe`. Sinks are quick and never block (the
writer only queues); one that fails is logged and the others still run.
"""

from __future__ import annotations

import logging

from resource_server_async import runtime
from resource_server_async.accounting.outcome import RequestOutcome

__all__ = ["RequestOutcome", "account"]

logger = logging.getLogger(__name__)


def account(outcome: RequestOutcome) -> None:
    """Hand a finished request to every sink; never raises."""
    try:
        sinks = runtime.current.accounting_sinks
    except RuntimeError:  # no runtime (a unit test of a view without the lifespan)
        return
    for sink in sinks:
        try:
            sink(outcome)
        except Exception:
            logger.exception("accounting: sink %r failed (request %s)", sink, outcome.request_id)
