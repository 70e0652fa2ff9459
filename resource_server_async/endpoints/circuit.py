"""A circuit breaker per endpoint: after ROUTING_CIRCUIT_FAILURES failures in a row, federated
routes skip the endpoint for ROUTING_CIRCUIT_COOLDOWN_SECONDS, then let one request through (the
probe): its success closes the circuit, its failure opens it again.

"Skipped" means ranked last: when every other candidate fails too, an open endpoint is still
tried, which beats refusing the request. Opened circuits are shared with the other workers of
the host through Redis when it is configured (routing_state.py); each worker probes on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Circuit:
    failures: int = 0  # in a row
    open_until: float = 0.0  # monotonic; 0 while closed
    probe_since: float = 0.0  # monotonic; 0 while no probe is out


class Circuits:
    """Keyed by endpoint slug: bounded by the catalog. An endpoint that never failed has no
    entry, so a healthy gateway pays one dict lookup per candidate."""

    def __init__(self, failures: int, cooldown: float) -> None:
        self.failures = max(1, failures)
        self.cooldown = cooldown
        self._circuits: dict[str, _Circuit] = {}
        # Opened (slug -> wall-clock end) and closed since the last share with other workers.
        self.opened: dict[str, float] = {}
        self.closed: set[str] = set()

    def state(self, slug: str) -> str:
        """ "closed", "open" or "half_open" (cool-down over, or a probe out)."""
        circuit = self._circuits.get(slug)
        if circuit is None or circuit.open_until == 0.0:
            return "closed"
        return "open" if self.blocked(slug) else "half_open"

    def blocked(self, slug: str) -> bool:
        """Whether to rank the endpoint last: open, or half-open with a probe already out."""
        circuit = self._circuits.get(slug)
        if circuit is None or circuit.open_until == 0.0:
            return False
        now = time.monotonic()
        if circuit.open_until > now:
            return True
        # A probe that never reported (its request was cancelled) counts for one cool-down.
        return circuit.probe_since > 0.0 and now - circuit.probe_since < self.cooldown

    def attempting(self, slug: str) -> None:
        """A request is about to call the endpoint: past the cool-down it is the probe."""
        circuit = self._circuits.get(slug)
        if circuit is not None and 0.0 < circuit.open_until <= time.monotonic():
            circuit.probe_since = time.monotonic()

    def failed(self, slug: str) -> None:
        circuit = self._circuits.get(slug)
        if circuit is None:
            circuit = self._circuits[slug] = _Circuit()
        circuit.failures += 1
        if circuit.probe_since > 0.0 or circuit.failures >= self.failures:
            self._open(slug, circuit, time.monotonic() + self.cooldown)

    def succeeded(self, slug: str) -> None:
        circuit = self._circuits.pop(slug, None)
        if circuit is not None and circuit.open_until > 0.0:
            self.opened.pop(slug, None)
            self.closed.add(slug)

    def adopt(self, shared: dict[str, float]) -> None:
        """Circuits another worker opened (slug -> wall-clock end): open here too until then."""
        wall, now = time.time(), time.monotonic()
        for slug, until in shared.items():
            remaining = until - wall
            circuit = self._circuits.get(slug)
            if remaining <= 0 or (circuit is not None and circuit.open_until >= now + remaining):
                continue
            if circuit is None:
                circuit = self._circuits[slug] = _Circuit(failures=self.failures)
            circuit.open_until, circuit.probe_since = now + remaining, 0.0

    def _open(self, slug: str, circuit: _Circuit, until: float) -> None:
        circuit.open_until, circuit.probe_since = until, 0.0
        self.opened[slug] = time.time() + (until - time.monotonic())
        self.closed.discard(slug)
