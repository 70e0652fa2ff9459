"""The process-wide resources, built when the API starts and closed when it stops, in one object.

The API's lifespan builds a Runtime from the settings, installs it as `current` and closes it at
shutdown; request code reaches a resource as `runtime.current.<resource>`. A module-level handle
rather than `request.app.state`: adapters and validators run far from the request object, and one
module attribute read costs no more than the per-module globals it replaces. Tests that start the
app get a fresh runtime per app; unit tests build one and install it (`installed`).

Parts are imported when a runtime is built, not when this module is imported, so that every
layer may import this module without an import cycle.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, cast

from django.conf import settings

if TYPE_CHECKING:
    from resource_server_async.accounting.metrics import MetricsRecorder
    from resource_server_async.accounting.outcome import RequestOutcome
    from resource_server_async.accounting.usage_reader import UsageReader
    from resource_server_async.accounting.writer import RecordWriter
    from resource_server_async.admission.allocation_books import AllocationBooks
    from resource_server_async.admission.capacity import Capacity
    from resource_server_async.admission.limiter import Limiter
    from resource_server_async.admission.redis_scripts import RedisScripts
    from resource_server_async.auth.api_keys import ApiKeyValidator
    from resource_server_async.auth.globus import GlobusTokenValidator
    from resource_server_async.clusters.live_state import LiveStates
    from resource_server_async.compute.base import ComputeExecutor
    from resource_server_async.endpoints.routing_state import RoutingState
    from resource_server_async.response_store import ResponseStore
    from resource_server_async.streaming import StreamHub
    from resource_server_async.upstream.clients import UpstreamClients

logger = logging.getLogger(__name__)


class Runtime:
    """Upstream sessions, the stream hub, the credential validators, the compute executor, and
    the catalog's refresher task. Built outside any event loop's concerns; used in one loop."""

    __slots__ = (
        "_admission_redis",
        "_allocations",
        "_capacity",
        "_catalog_refreshing",
        "_executor",
        "_limiter",
        "_live_states",
        "_response_store",
        "_routing",
        "_usage_reader",
        "accounting_sinks",
        "api_keys",
        "globus",
        "hub",
        "metrics",
        "record_writer",
        "upstream",
    )

    def __init__(
        self,
        *,
        upstream: UpstreamClients,
        hub: StreamHub,
        api_keys: ApiKeyValidator,
        globus: GlobusTokenValidator | None,
        executor: ComputeExecutor | None = None,
        record_writer: RecordWriter | None = None,
        accounting_sinks: tuple[Callable[[RequestOutcome], None], ...] = (),
    ) -> None:
        self.upstream = upstream
        self.hub = hub
        self.api_keys = api_keys
        # None when GLOBUS_APPLICATION_ID is unset: Globus tokens are refused without the SDK.
        self.globus = globus
        self._executor = executor
        self._response_store: ResponseStore | None = None
        self._admission_redis: RedisScripts | None = None
        self._limiter: Limiter | None = None
        self._allocations: AllocationBooks | None = None
        self._capacity: Capacity | None = None
        self._live_states: LiveStates | None = None
        self._routing: RoutingState | None = None
        self._catalog_refreshing = False
        self._usage_reader: UsageReader | None = None
        # None when RECORDS_ENABLED is off; its `stats` are the records' metrics.
        self.record_writer = record_writer
        # Where accounting.account sends each finished request (record writer, metrics, the
        # request log).
        if record_writer is not None and not accounting_sinks:
            accounting_sinks = (record_writer.submit,)
        self.accounting_sinks = accounting_sinks
        # Set by record_metrics(); None when METRICS_ENABLED is off.
        self.metrics: MetricsRecorder | None = None

    @classmethod
    def from_settings(cls) -> Runtime:
        from resource_server_async.auth.api_keys import ApiKeyValidator
        from resource_server_async.streaming import build_hub
        from resource_server_async.upstream.clients import UpstreamClients

        globus: GlobusTokenValidator | None = None
        if settings.GLOBUS_APPLICATION_ID:
            # Imports globus_sdk now, at start-up, rather than on the first request's loop.
            from resource_server_async.auth.globus import GlobusTokenValidator

            globus = GlobusTokenValidator()
        record_writer = None
        if settings.RECORDS_ENABLED:
            from resource_server_async.accounting.writer import RecordWriter

            record_writer = RecordWriter.from_settings()
        runtime = cls(
            upstream=UpstreamClients(),
            hub=build_hub(),
            api_keys=ApiKeyValidator.from_settings(),
            globus=globus,
            record_writer=record_writer,
        )
        if settings.METRICS_ENABLED:
            runtime.record_metrics()
        if settings.REQUEST_LOG:
            from resource_server_async.accounting.request_log import RequestLog

            runtime.accounting_sinks = (*runtime.accounting_sinks, RequestLog.shared().observe)
        return runtime

    def record_metrics(self) -> None:
        """Feed the Prometheus series: the recorder's `observe` joins the accounting sinks."""
        from resource_server_async.accounting.metrics import MetricsRecorder

        writer = self.record_writer
        self.metrics = MetricsRecorder(
            records=lambda: None if writer is None else writer.stats,
            pending_tasks=lambda: self.pending_tasks,
        )
        self.accounting_sinks = (*self.accounting_sinks, self.metrics.observe)

    @property
    def executor(self) -> ComputeExecutor:
        """The compute executor, built on first use: a gateway with no Globus Compute endpoint
        never needs one (start_compute builds it at start-up when one is in the catalog)."""
        if self._executor is None:
            from resource_server_async.compute import build_executor

            self._executor = build_executor()
        return self._executor

    @property
    def response_store(self) -> ResponseStore:
        """The Responses conversation store (RESPONSES_STORE), built on first use."""
        if self._response_store is None:
            from resource_server_async.response_store import build_store

            self._response_store = build_store()
        return self._response_store

    @property
    def admission_redis(self) -> RedisScripts:
        """The one Redis connection of admission's scripts (limits, allocations, fair queue):
        a request's calls to all three share its writes. Built on first use."""
        if self._admission_redis is None:
            from resource_server_async.admission.redis_scripts import RedisScripts

            self._admission_redis = RedisScripts.from_settings()
        return self._admission_redis

    @property
    def limiter(self) -> Limiter:
        """The admission limiter (Redis with REDIS_URL, else in-process), built on first use:
        a gateway without limits never makes one."""
        if self._limiter is None:
            from resource_server_async.admission.limiter import build_limiter

            self._limiter = build_limiter()
        return self._limiter

    @property
    def allocations(self) -> AllocationBooks:
        """The allocations' ledger and its reconciler, built (and started) on first use, in the
        serving loop: a gateway whose requests meet no allocation never makes them."""
        if self._allocations is None:
            from resource_server_async.admission.allocation_books import AllocationBooks

            self._allocations = AllocationBooks.from_settings()
            self._allocations.start()
        return self._allocations

    @property
    def capacity(self) -> Capacity:
        """Endpoint capacities and their fair queues (Redis with REDIS_URL, else in-process),
        built on first use: a gateway with no max_concurrent never makes one."""
        if self._capacity is None:
            from resource_server_async.admission.capacity import build_capacity

            self._capacity = build_capacity()
        return self._capacity

    @property
    def live_states(self) -> LiveStates:
        """The endpoints' live states (federated routing, the model list), built on first use."""
        if self._live_states is None:
            from resource_server_async.clusters.live_state import LiveStates

            self._live_states = LiveStates(
                settings.LIVE_STATE_SECONDS, settings.LIVE_STATE_PROBE_TIMEOUT
            )
        return self._live_states

    @property
    def routing(self) -> RoutingState:
        """Federated routing's load, latency and circuits (shared through Redis when set)."""
        if self._routing is None:
            from resource_server_async.endpoints.routing_state import RoutingState

            self._routing = RoutingState(
                failures=settings.ROUTING_CIRCUIT_FAILURES,
                cooldown=settings.ROUTING_CIRCUIT_COOLDOWN_SECONDS,
                redis_url=settings.REDIS_URL,
                prefix=settings.ROUTING_REDIS_PREFIX,
                interval=settings.ROUTING_SHARE_SECONDS,
            )
        return self._routing

    @property
    def usage_reader(self) -> UsageReader:
        """The thread that answers usage queries, built on first use."""
        if self._usage_reader is None:
            from resource_server_async.accounting.usage_reader import UsageReader

            self._usage_reader = UsageReader(settings.USAGE_MAX_PENDING)
        return self._usage_reader

    def start_compute(self) -> None:
        """Build the executor now (importing the Globus Compute SDK) if the catalog uses it."""
        if self._executor is None and _catalog_uses_compute():
            from inference_gateway.config import check_workers
            from resource_server_async.compute import build_executor

            check_workers(
                settings.GATEWAY_WORKERS,
                settings.GATEWAY_WORKERS_SOURCE,
                settings.REDIS_URL,
                "a Globus Compute endpoint is in the catalog",
            )

            self._executor = build_executor()

    def start_records(self) -> None:
        """Start the record writer's task (in the serving loop)."""
        if self.record_writer is not None:
            self.record_writer.start()

    async def start_catalog(self, interval: float) -> None:
        """Load the catalog, then keep it fresh in the background until close()."""
        from resource_server_async.catalog.snapshot import catalog

        try:
            await catalog.refresh()
        except Exception:
            logger.exception("catalog: first load failed; retrying in the background")
        catalog.start_refresher(interval)
        self._catalog_refreshing = True

    @property
    def pending_tasks(self) -> int:
        """Compute tasks this process waits for (0 while no executor was built)."""
        return 0 if self._executor is None else self._executor.pending_tasks

    async def close(self) -> None:
        """Close everything this runtime built, the last built first; one failure does not stop
        the rest from closing."""
        closers: list[Callable[[], Awaitable[None]]] = []
        if self.metrics is not None:  # closed last: it folds the others' final counts
            closers.append(self.metrics.close)
        closers += [self.upstream.close, self.api_keys.aclose]
        if self.globus is not None:
            closers.append(self.globus.aclose)
        closers.append(self.hub.close)
        if self._executor is not None:
            closers.append(self._executor.close)
        if self._response_store is not None:
            closers.append(self._response_store.close)
        if self._admission_redis is not None:  # closed after the three that use it
            closers.append(self._admission_redis.close)
        if self._limiter is not None:
            closers.append(self._limiter.close)
        if self._allocations is not None:
            closers.append(self._allocations.close)
        if self._capacity is not None:
            closers.append(self._capacity.close)
        if self._usage_reader is not None:
            closers.append(self._usage_reader.aclose)
        if self._live_states is not None:
            self._live_states.clear()  # cancels background reads before the clients close
        if self._routing is not None:
            closers.append(self._routing.close)
        if self._catalog_refreshing:
            from resource_server_async.catalog.snapshot import catalog

            closers.append(catalog.stop_refresher)
            self._catalog_refreshing = False
        if self.record_writer is not None:
            # Closed first: it flushes what the last requests left in its queue.
            closers.append(self.record_writer.close)
        for close in reversed(closers):
            try:
                await close()
            except Exception:
                logger.exception("runtime: closing %r failed", close)
        self._executor = None
        self._response_store = None
        self._admission_redis = None
        self._limiter = None
        self._allocations = None
        self._capacity = None
        self._usage_reader = None
        self._live_states = None
        self._routing = None


def _catalog_uses_compute() -> bool:
    if settings.COMPUTE_EXECUTOR.strip().lower() != "globus":
        return False
    from resource_server_async.catalog.snapshot import catalog
    from resource_server_async.clusters.globus_compute import GlobusComputeCluster
    from resource_server_async.endpoints.globus_compute import GlobusComputeEndpoint

    snapshot = catalog.snapshot
    return any(isinstance(e, GlobusComputeEndpoint) for e in snapshot.endpoints.values()) or any(
        isinstance(c, GlobusComputeCluster) for c in snapshot.clusters.values()
    )


class _NotStarted:
    """Stands in for a runtime before the lifespan built one: says so instead of a bare
    AttributeError on None."""

    def __getattr__(self, name: str) -> None:
        raise RuntimeError(
            f"no runtime: runtime.current.{name} was used before the API's lifespan started "
            "(tests: install one with `runtime.installed(Runtime.from_settings())`)"
        )


NOT_STARTED = cast(Runtime, _NotStarted())
current: Runtime = NOT_STARTED


@contextlib.asynccontextmanager
async def installed(runtime: Runtime) -> AsyncIterator[Runtime]:
    """Make `runtime` the current one, and close it on exit (the previous one comes back)."""
    global current
    previous, current = current, runtime
    try:
        yield runtime
    finally:
        current = previous
        await runtime.close()
