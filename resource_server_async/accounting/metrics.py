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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

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
    "Inference requests being answered now.",
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
# Outcomes held between folds; a burst beyond folds at once, on the request that reaches it.
_MAX_HELD = 1000
# Seconds between folds (and samples of the writer and executor): how stale a scrape may be.
FOLD_SECONDS = 1.0


@dataclass(slots=True, frozen=True)
class _Series:
    """One label set's children, looked up once: `labels()` costs ~1 µs each."""

    cluster: str
    model: str
    requests: Counter
    duration: Histogram
    upstream: Histogram
    first_token: Histogram
    input_tokens: Histogram
    output_tokens: Histogram


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
    """The accounting sink of one worker: `observe` only holds the outcome; `fold` (once a
    second, in a task of its own) adds what was held to the series.

    Why hold: in multiprocess mode every update of a series is a locked write to its file,
    ~1-3 µs, and a request updates six; folding moves that off the request's path (measured in
    tests/metrics: `observe` < 1 µs). The task also copies the counts of the record writer and
    the compute executor into the series, since those keep plain ints.
    """

    def __init__(
        self,
        records: Callable[[], RecordCounts | None] = lambda: None,
        pending_tasks: Callable[[], int] = lambda: 0,
    ) -> None:
        self._held: list[RequestOutcome] = []
        self._series: dict[tuple[str, str, str, int], _Series] = {}
        self._records = records
        self._pending_tasks = pending_tasks
        self._seen = dict.fromkeys(RECORD_STATES, 0)
        self._folding: asyncio.Task[None] | None = None

    def observe(self, outcome: RequestOutcome) -> None:
        """The sink: hold one finished request until the next fold."""
        self._held.append(outcome)
        if len(self._held) >= _MAX_HELD:
            self.fold()
        elif self._folding is None:
            self._start()

    def _start(self) -> None:
        try:
            self._folding = asyncio.get_running_loop().create_task(self._fold_forever())
        except RuntimeError:  # no loop (a command, a unit test): fold as it comes
            self.fold()

    async def _fold_forever(self) -> None:
        while True:
            await asyncio.sleep(FOLD_SECONDS)
            try:
                self.fold()
            except Exception:
                logger.exception("metrics: folding failed")

    def fold(self) -> None:
        """Add the held outcomes to the series; copy the writer's and executor's counts."""
        held, self._held = self._held, []
        for outcome in held:
            self._add(outcome)
        self._sample()

    def _add(self, outcome: RequestOutcome) -> None:
        key = _labels(outcome)
        series = self._series.get(key) or self._series_for(key)
        series.requests.inc()
        if outcome.ended is not None:
            series.duration.observe(outcome.ended - outcome.started)
            if outcome.upstream_started is not None:
                series.upstream.observe(outcome.ended - outcome.upstream_started)
        if outcome.first_byte is not None and outcome.stream and outcome.status < 400:
            series.first_token.observe(outcome.first_byte - outcome.started)
        if outcome.prompt_tokens is not None:
            series.input_tokens.observe(outcome.prompt_tokens)
        if outcome.completion_tokens is not None:
            series.output_tokens.observe(outcome.completion_tokens)
        if outcome.status >= 500 and outcome.error_code in UPSTREAM_ERROR_KINDS:
            UPSTREAM_ERRORS.labels(series.cluster, series.model, outcome.error_code).inc()

    def _series_for(self, key: tuple[str, str, str, int]) -> _Series:
        if len(self._series) >= _MAX_SERIES:
            self._series.clear()
        cluster, model, operation, status = key
        labels = (cluster, model, operation)
        series = _Series(
            cluster=cluster,
            model=model,
            requests=REQUESTS.labels(*labels, str(status)),
            duration=REQUEST_DURATION.labels(*labels),
            upstream=UPSTREAM_DURATION.labels(*labels),
            first_token=TIME_TO_FIRST_TOKEN.labels(*labels),
            input_tokens=TOKEN_USAGE.labels(*labels, "input"),
            output_tokens=TOKEN_USAGE.labels(*labels, "output"),
        )
        self._series[key] = series
        return series

    def _sample(self) -> None:
        COMPUTE_TASKS_PENDING.set(self._pending_tasks())
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
