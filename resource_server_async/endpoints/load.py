"""Requests in flight and recent latency per endpoint: the load half of the federated choice.

Counts are this worker's own, plus the other workers' as last published through Redis
(routing_state.py); both dicts are keyed by endpoint slug, so they are bounded by the catalog.
"""

from __future__ import annotations

# Weight of the newest latency in the moving average: about the last ten answers count.
_EWMA_WEIGHT = 0.2


class EndpointLoad:
    def __init__(self) -> None:
        self.local: dict[str, int] = {}  # this worker's requests in flight
        self.others: dict[str, int] = {}  # the other workers', as last read
        self._latency: dict[str, float] = {}

    def begin(self, slug: str) -> None:
        self.local[slug] = self.local.get(slug, 0) + 1

    def end(self, slug: str) -> None:
        left = self.local.get(slug, 0) - 1
        if left > 0:
            self.local[slug] = left
        else:
            self.local.pop(slug, None)

    def observe(self, slug: str, seconds: float) -> None:
        """One answer's latency (to the whole answer, or to the start of a stream)."""
        last = self._latency.get(slug)
        self._latency[slug] = seconds if last is None else last + _EWMA_WEIGHT * (seconds - last)

    def in_flight(self, slug: str) -> int:
        return self.local.get(slug, 0) + self.others.get(slug, 0)

    def latency(self, slug: str) -> float:
        """The moving average in seconds; 0 for an endpoint never timed, so it gets tried."""
        return self._latency.get(slug, 0.0)
