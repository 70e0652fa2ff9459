"""The gateway's Prometheus series, and MetricsRecorder, the accounting sink that feeds them.

Names follow the OpenTelemetry `gen_ai` semantic conventions where they have one (in their
Prometheus form, with their advisory bucket boundaries); the rest start with `gateway_`.
Label values come only from the catalog (cluster, model) and from fixed sets in this code
(operation, status, error kind, token type), never from what a caller sends: a request for an
unknown cluster or model is counted with an empty label.

Worker processes share the values through prometheus_client's multiprocess files (see
metrics_files.py for why); a process that did not prepare them keeps them in its own registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import Counter, Gauge, Histogram

from resource_server_async.accounting import in_flight
from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.catalog.snapshot import catalog

logger = logging.getLogger(__name__)

# The conventions' advisory boundaries: durations (s), time to first token (s), tokens.
_DURATION_BUCKETS = tuple(0.01 * 2**n for n in range(14))  # 0.01, 0.02, ... 81.92
# fmt: off
_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
# fmt: on
_TOKEN_BUCKETS = tuple(float(4**n) for n in range(14))  # 1, 4, 16, ... 67,108,864

_BY_ENDPOINT = ("cluster", "model", "operation")

REQUESTS = Counter(
    "gateway_requests",
    "Inference requests answered, by cluster, model, operation and HTTP status.",
    [*_BY_ENDPOINT, "status"],
)
REQUEST_DURATION = Histogram(
    "gen_ai_server_request_duration_seconds",
    "Seconds from a request's receipt to the end of its answer (refused ones included).",
    _BY_ENDPOINT,
    buckets=_DURATION_BUCKETS,
)
UPSTREAM_DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "Seconds from the call to the model server (or compute task) to the end of its answer.",
    _BY_ENDPOINT,
    buckets=_DURATION_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "Seconds from a successful stream's receipt to the first chunk from the model server.",
    _BY_ENDPOINT,
    buckets=_TTFT_BUCKETS,
)
TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage",
    "Tokens per request: input (prompt) and output (completion), as the server reported them.",
    [*_BY_ENDPOINT, "gen_ai_token_type"],
    buckets=_TOKEN_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors",
    "Failures of model servers and compute tasks, by kind (the error code the caller got).",
    ["cluster", "model", "error_type"],
)
IN_FLIGHT = Gauge(
    "gateway_requests_in_flight",
    "Inference requests being answered now (sampled once a second).",
    multiprocess_mode="livesum",  # the workers' sum, of the workers alive
)
COMPUTE_TASKS_PENDING = Gauge(
    "gateway_compute_tasks_pending",
    "Globus Compute (or local executor) tasks submitted and not finished yet.",
    multiprocess_mode="livesum",
)
RECORDS = Counter(
    "gateway_records",
    "Request records since the server started: written to the database, spooled to disk "
    "while it was down, dropped (lost).",
    ["state"],
)

OPERATIONS = frozenset(
    {
        "chat/completions",
        "completions",
        "embeddings",
        "responses",
        "messages",
        "messages/count_tokens",
    }
)
# Kinds of failure of the model server or the compute task (error codes the gateway sets).
# An upstream 4xx keeps the server's own code, which is the caller's mistake and not counted.
UPSTREAM_ERROR_KINDS = frozenset(
    {
        "upstream_error",
        "upstream_unreachable",
        "upstream_timeout",
        "upstream_busy",
        "upstream_stream_interrupted",
        "upstream_response_too_large",
        "upstream_malformed_answer",
        "upstream_auth_failed",
        "model_not_live",
        "endpoint_offline",
        "endpoint_unavailable",
        "endpoint_key_missing",
        "compute_task_failed",
        "compute_bad_result",
        "compute_timeout",
        "compute_service_error",
        "compute_service_refused",
        "compute_not_configured",
    }
)
RECORD_STATES = ("written", "spooled", "dropped")
# Label sets remembered with their children; bounded by the catalog in practice, and cleared
# past this many (endpoints removed from the catalog leave theirs behind).
_MAX_SERIES = 4096
# Seconds between folds (and samples of the writer and executor): how stale a scrape may be.
FOLD_SECONDS = 1.0


class _Tally:
    """A histogram child's observations since the last fold, in plain numbers: the counts per
    bucket and the sum, added to its multiprocess values in one write each (see `fold`)."""

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        # The child's own bounds, +Inf last: the bucket of an amount is the first bound >= it.
        self.bounds: list[float] = child._upper_bounds
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def add(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.total += amount

    def write(self) -> None:
        """What `Histogram.observe` writes, once for all the observations: the sum, and each
        bucket's count (prometheus_client keeps them per bucket, made cumulative when read)."""
        if not any(self.counts):
            return
        child: Any = self.child
        child._sum.inc(self.total)
        for index, count in enumerate(self.counts):
            if count:
                child._buckets[index].inc(count)
                self.counts[index] = 0
        self.total = 0.0


class _Series:
    """One label set: its children, looked up once (`labels()` costs ~1 µs each), and what
    was observed of them since the last fold."""

    __slots__ = (
        "cluster",
        "duration",
        "first_token",
        "input_tokens",
        "model",
        "output_tokens",
        "requests",
        "requests_child",
        "upstream",
    )

    def __init__(self, cluster: str, model: str, operation: str, status: int) -> None:
        labels = (cluster, model, operation)
        self.cluster, self.model = cluster, model
        self.requests_child = REQUESTS.labels(*labels, str(status))
        self.requests = 0
        self.duration = _Tally(REQUEST_DURATION.labels(*labels))
        self.upstream = _Tally(UPSTREAM_DURATION.labels(*labels))
        self.first_token = _Tally(TIME_TO_FIRST_TOKEN.labels(*labels))
        self.input_tokens = _Tally(TOKEN_USAGE.labels(*labels, "input"))
        self.output_tokens = _Tally(TOKEN_USAGE.labels(*labels, "output"))

    def write(self) -> None:
        if self.requests:
            self.requests_child.inc(self.requests)
            self.requests = 0
        for tally in (
            self.duration,
            self.upstream,
            self.first_token,
            self.input_tokens,
            self.output_tokens,
        ):
            tally.write()


def _labels(outcome: RequestOutcome) -> tuple[str, str, str, int]:
    snapshot = catalog.snapshot
    endpoint = snapshot.endpoints.get(outcome.endpoint_slug) if outcome.endpoint_slug else None
    if endpoint is not None:
        cluster, model = endpoint.row.cluster, endpoint.model
    else:
        cluster = outcome.cluster if outcome.cluster in snapshot.clusters else ""
        model = ""
    operation = outcome.operation if outcome.operation in OPERATIONS else "other"
    status = outcome.status if 100 <= outcome.status <= 599 else 0
    return cluster, model, operation, status


class RecordCounts(Protocol):
    """What the record writer counts since its process started."""

    written: int
    spooled: int
    dropped: int


class MetricsRecorder:
    """The accounting sink of one worker: `observe` tallies a finished request in plain
    numbers; `fold` (once a second, in a task of its own) writes the tallies to the series.

    Why tally: in multiprocess mode every update of a value is a locked write to its file,
    ~1-3 µs, and a request updates a dozen (a counter, five histograms' sums and buckets);
    a fold writes each value once, however many requests it covers (measured in bench/:
    `--scenarios accounting`). The task also copies the counts of the record writer, the
    compute executor and the requests in flight into the series, since those keep plain ints.
    """

    def __init__(
        self,
        records: Callable[[], RecordCounts | None] = lambda: None,
        pending_tasks: Callable[[], int] = lambda: 0,
    ) -> None:
        self._series: dict[tuple[str, str, str, int], _Series] = {}
        self._errors: dict[tuple[str, str, str], int] = {}
        self._records = records
        self._pending_tasks = pending_tasks
        self._seen = dict.fromkeys(RECORD_STATES, 0)
        self._folding: asyncio.Task[None] | None = None
        self._started = False

    def observe(self, outcome: RequestOutcome) -> None:
        """The sink: tally one finished request until the next fold."""
        key = _labels(outcome)
        series = self._series.get(key) or self._series_for(key)
        series.requests += 1
        ended = outcome.ended
        if ended is not None:
            series.duration.add(ended - outcome.started)
            if outcome.upstream_started is not None:
                series.upstream.add(ended - outcome.upstream_started)
        if outcome.first_byte is not None and outcome.stream and outcome.status < 400:
            series.first_token.add(outcome.first_byte - outcome.started)
        if outcome.prompt_tokens is not None:
            series.input_tokens.add(outcome.prompt_tokens)
        if outcome.completion_tokens is not None:
            series.output_tokens.add(outcome.completion_tokens)
        if outcome.status >= 500 and outcome.error_code in UPSTREAM_ERROR_KINDS:
            error = (series.cluster, series.model, outcome.error_code)
            self._errors[error] = self._errors.get(error, 0) + 1
        if not self._started:
            self._start()

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a command, a unit test): written as it comes
            self.fold()
            return
        self._started = True
        self._folding = loop.create_task(self._fold_forever())

    async def _fold_forever(self) -> None:
        while True:
            await asyncio.sleep(FOLD_SECONDS)
            try:
                self.fold()
            except Exception:
                logger.exception("metrics: folding failed")

    def fold(self) -> None:
        """Write the tallies to the series; copy the writer's, executor's and in-flight counts."""
        for series in self._series.values():
            series.write()
        errors, self._errors = self._errors, {}
        for labels, count in errors.items():
            UPSTREAM_ERRORS.labels(*labels).inc(count)
        self._sample()

    def _series_for(self, key: tuple[str, str, str, int]) -> _Series:
        if len(self._series) >= _MAX_SERIES:
            self.fold()  # what the old label sets hold is written before they are forgotten
            self._series.clear()
        series = _Series(*key)
        self._series[key] = series
        return series

    def _sample(self) -> None:
        COMPUTE_TASKS_PENDING.set(self._pending_tasks())
        IN_FLIGHT.set(in_flight.count)
        records = self._records()
        if records is None:
            return
        for state in RECORD_STATES:
            now = getattr(records, state)
            if now > self._seen[state]:
                RECORDS.labels(state).inc(now - self._seen[state])
                self._seen[state] = now

    async def close(self) -> None:
        """Stop folding and fold what is left (after the record writer has closed)."""
        if self._folding is not None:
            self._folding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._folding
            self._folding = None
        self.fold()
