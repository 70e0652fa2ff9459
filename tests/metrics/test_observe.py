"""The recorder: what finished requests add to the series, the labels it may use, its writes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from resource_server_async.accounting import in_flight, metrics
from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.catalog.snapshot import build_snapshot, catalog
from resource_server_async.catalog.validation import expected_slug
from resource_server_async.clusters.base import ClusterRow
from resource_server_async.endpoints.base import EndpointRow
from tests.inference.catalog_files import DIRECT_CLUSTER, DIRECT_ENDPOINT
from tests.waiting import wait_until_async

MODEL = "Observed/Model-1"
SLUG = expected_slug("obs", "vllm", MODEL)


def observe(*outcomes: RequestOutcome) -> None:
    recorder = metrics.MetricsRecorder()
    for finished in outcomes:
        recorder.observe(finished)
    recorder.fold()


@pytest.fixture(autouse=True)
def observed_catalog() -> Iterator[None]:
    cluster = ClusterRow(
        name="obs",
        adapter_path=DIRECT_CLUSTER,
        frameworks=("vllm",),
        openai_endpoints=("chat/completions",),
    )
    endpoint = EndpointRow(
        slug=SLUG,
        cluster="obs",
        framework="vllm",
        model=MODEL,
        adapter_path=DIRECT_ENDPOINT,
        config={"api_url": "http://127.0.0.1:9", "api_key_env_name": ""},
    )
    previous = catalog.snapshot
    catalog.snapshot = build_snapshot([cluster], [endpoint])
    yield
    catalog.snapshot = previous


def outcome(**fields: object) -> RequestOutcome:
    started = time.perf_counter()
    values: dict[str, object] = {
        "request_id": "r",
        "received_at": time.time(),
        "started": started,
        "route": "cluster",
        "operation": "chat/completions",
        "cluster": "obs",
        "framework": "vllm",
        "model": MODEL.lower(),
        "endpoint_slug": SLUG,
        "status": 200,
        "upstream_started": started + 0.001,
        "first_byte": started + 0.03,
        "ended": started + 0.25,
        "stream": True,
        "prompt_tokens": 12,
        "completion_tokens": 30,
    }
    values.update(fields)
    return RequestOutcome(**values)  # type: ignore[arg-type]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


BY_ENDPOINT = {"cluster": "obs", "model": MODEL, "operation": "chat/completions"}


def stream_series() -> dict[str, float]:
    """The values one chat stream of the observed endpoint adds to."""
    tokens = "gen_ai_client_token_usage_sum"
    ttft = "gen_ai_server_time_to_first_token_seconds"
    duration = "gen_ai_server_request_duration_seconds"
    return {
        "requests": value("gateway_requests_total", **BY_ENDPOINT, status="200"),
        "duration": value(f"{duration}_count", **BY_ENDPOINT),
        "duration_sum": value(f"{duration}_sum", **BY_ENDPOINT),
        "fast": value(f"{duration}_bucket", **BY_ENDPOINT, le="0.16"),
        "slow": value(f"{duration}_bucket", **BY_ENDPOINT, le="0.32"),
        "upstream": value("gen_ai_client_operation_duration_seconds_count", **BY_ENDPOINT),
        "ttft": value(f"{ttft}_count", **BY_ENDPOINT),
        "ttft_fast": value(f"{ttft}_bucket", **BY_ENDPOINT, le="0.04"),
        "input": value(tokens, **BY_ENDPOINT, gen_ai_token_type="input"),
        "output": value(tokens, **BY_ENDPOINT, gen_ai_token_type="output"),
    }


def test_a_stream_adds_a_request_its_latencies_and_its_tokens() -> None:
    before = stream_series()
    observe(outcome())
    after = stream_series()
    grew = {name: round(after[name] - before[name], 6) for name in before}
    assert grew == {
        "requests": 1,
        "duration": 1,
        "duration_sum": 0.25,
        "fast": 0,  # 0.25 s is above the 0.16 s bucket...
        "slow": 1,  # ...and within 0.32 s
        "upstream": 1,
        "ttft": 1,
        "ttft_fast": 1,  # 0.03 s
        "input": 12,
        "output": 30,
    }


def test_labels_come_from_the_catalog_never_from_the_caller() -> None:
    names = ("made-up-cluster", "x" * 40)
    observe(
        *[outcome(cluster=name, endpoint_slug="", model=name, status=404) for name in names],
        outcome(operation="../../etc", status=404, endpoint_slug=""),
    )
    samples = [
        sample
        for family in REGISTRY.collect()
        if family.name.startswith(("gateway_", "gen_ai_"))
        for sample in family.samples
    ]
    seen = {value for sample in samples for value in sample.labels.values()}
    assert not seen & {*names, "../../etc"}
    # The refusals are counted, with empty cluster and model labels.
    assert value(
        "gateway_requests_total", cluster="", model="", operation="chat/completions", status="404"
    ) >= len(names)
    assert value("gateway_requests_total", cluster="obs", model="", operation="other", status="404")


def test_upstream_failures_are_counted_by_kind_and_caller_mistakes_are_not() -> None:
    labels = {"cluster": "obs", "model": MODEL}
    timeouts = value("gateway_upstream_errors_total", **labels, error_type="upstream_timeout")
    observe(
        outcome(status=504, error_code="upstream_timeout", first_byte=None),
        # An upstream 4xx keeps the server's own code: the caller's mistake, and any string.
        outcome(status=400, error_code="context_length_exceeded", first_byte=None),
        outcome(status=502, error_code="server-chosen-code", first_byte=None),
    )
    assert value("gateway_upstream_errors_total", **labels, error_type="upstream_timeout") == (
        timeouts + 1
    )
    kinds = {
        sample.labels["error_type"]
        for family in REGISTRY.collect()
        if family.name == "gateway_upstream_errors"
        for sample in family.samples
    }
    assert kinds <= metrics.UPSTREAM_ERROR_KINDS


def test_time_to_first_token_is_only_for_successful_streams() -> None:
    count = "gen_ai_server_time_to_first_token_seconds_count"
    before = value(count, **BY_ENDPOINT)
    observe(outcome(stream=False), outcome(status=502, error_code="upstream_stream_interrupted"))
    assert value(count, **BY_ENDPOINT) == before


def test_the_recorder_adds_what_the_writer_counted_since_the_last_fold() -> None:
    class Counts:
        written, spooled, dropped = 5, 0, 0

    def records(state: str) -> float:
        return value("gateway_records_total", state=state)

    before = {state: records(state) for state in metrics.RECORD_STATES}
    counts, pending = Counts(), [3]
    recorder = metrics.MetricsRecorder(records=lambda: counts, pending_tasks=lambda: pending[0])
    recorder.fold()
    assert value("gateway_compute_tasks_pending") == 3
    counts.written, counts.dropped, pending[0] = 9, 2, 0
    recorder.fold()
    recorder.fold()
    grew = {state: records(state) - before[state] for state in metrics.RECORD_STATES}
    assert grew == {"written": 9, "spooled": 0, "dropped": 2}
    assert value("gateway_compute_tasks_pending") == 0


async def test_tallies_are_written_within_a_second_on_the_loop() -> None:
    recorder = metrics.MetricsRecorder()
    before = value("gateway_requests_total", **BY_ENDPOINT, status="201")
    recorder.observe(outcome(status=201))
    assert value("gateway_requests_total", **BY_ENDPOINT, status="201") == before  # tallied
    await wait_until_async(
        lambda: value("gateway_requests_total", **BY_ENDPOINT, status="201") == before + 1,
        timeout=metrics.FOLD_SECONDS * 5,
    )
    await recorder.close()


def test_many_requests_add_up_to_what_each_would_add() -> None:
    before = stream_series()
    recorder = metrics.MetricsRecorder()
    for _ in range(500):
        recorder.observe(outcome())
    recorder.fold()
    after = stream_series()
    grew = {name: round(after[name] - before[name], 6) for name in before}
    assert grew == {
        "requests": 500,
        "duration": 500,
        "duration_sum": 125.0,
        "fast": 0,
        "slow": 500,
        "upstream": 500,
        "ttft": 500,
        "ttft_fast": 500,
        "input": 6000,
        "output": 15000,
    }


async def test_a_fold_writes_each_value_once_however_many_requests_it_covers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cost that matters in multiprocess mode: each write to a value is a locked file
    write. A fold's writes depend on the label sets and buckets touched, not on the requests."""
    value_class = type(metrics.REQUESTS.labels("obs", MODEL, "chat/completions", "200")._value)
    writes = [0]
    original = value_class.inc

    def counted(self: object, amount: float) -> None:
        writes[0] += 1
        original(self, amount)

    monkeypatch.setattr(value_class, "inc", counted)

    async def writes_for(requests: int) -> int:
        recorder = metrics.MetricsRecorder()  # on the loop: observe only tallies
        for _ in range(requests):
            recorder.observe(outcome())
        writes[0] = 0
        recorder.fold()
        counted = writes[0]
        await recorder.close()
        return counted

    one = await writes_for(1)
    assert one == 11  # the counter; five histograms' sum and one bucket each
    assert await writes_for(1000) == one


def test_the_in_flight_gauge_is_the_count_at_the_last_fold() -> None:
    recorder = metrics.MetricsRecorder()
    in_flight.enter()
    in_flight.enter()
    try:
        recorder.fold()
        assert value("gateway_requests_in_flight") == 2
    finally:
        in_flight.leave()
        in_flight.leave()
    recorder.fold()
    assert value("gateway_requests_in_flight") == 0
