"""GET /metrics from a real gateway with two worker processes: refused without its token, and
the series summed over both workers (each counts what it served in its own file)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

TOKEN = "scrape-" + "t0k3n" * 6
CHAT = {"cluster": "alpha", "model": "fake-model", "operation": "chat/completions"}


@pytest.fixture(scope="module")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("fake-model",)) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("metrics-gateway")
    files = CatalogFiles()
    files.cluster("alpha")
    files.endpoint("alpha", "fake-model", backend.url)
    env = {"METRICS_TOKEN": TOKEN}
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env, workers=2) as server:
        yield server


def scrape(gateway: GatewayServer, token: str | None = TOKEN) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.get(f"{gateway.url}/metrics", headers=headers, timeout=10)


def samples(gateway: GatewayServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = scrape(gateway)
    assert answer.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(gateway: GatewayServer, name: str, **labels: str) -> float:
    return samples(gateway).get((name, frozenset(labels.items())), 0.0)


def metric_directory(gateway: GatewayServer) -> Path:
    assert gateway.process is not None
    # One directory per server start, named after uvicorn's supervising process.
    return gateway.tmp_path / "data" / "metrics" / str(gateway.process.pid)


def counting_workers(gateway: GatewayServer) -> set[str]:
    pattern = re.compile(r"^counter_(\d+)\.db$")
    return {m.group(1) for p in metric_directory(gateway).iterdir() if (m := pattern.match(p.name))}


def test_refused_without_its_token(gateway: GatewayServer) -> None:
    for token in (None, "wrong", TOKEN[:-1]):
        answer = scrape(gateway, token)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "invalid_metrics_token"
        assert answer.headers["www-authenticate"] == "Bearer"
    assert scrape(gateway).headers["content-type"].startswith("text/plain; version=")


def test_two_workers_values_are_summed(gateway: GatewayServer) -> None:
    before = value(gateway, "gateway_requests_total", **CHAT, status="200")
    sent = 0

    def served_by_both() -> bool:
        nonlocal sent
        # A new connection each time: the kernel hands connections to either worker.
        client = gateway.openai_client()
        client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "one two three"}]
        )
        client.close()
        sent += 1
        return len(counting_workers(gateway)) >= 2 and sent >= 4

    wait_until(served_by_both, timeout=60)
    # Each worker folds what it holds within a second; the scraped sum reaches what was sent.
    wait_until(
        lambda: value(gateway, "gateway_requests_total", **CHAT, status="200") == before + sent
    )
    found = samples(gateway)
    by_chat = frozenset(CHAT.items())
    duration = found[("gen_ai_server_request_duration_seconds_count", by_chat)]
    assert duration >= sent
    tokens = found[("gen_ai_client_token_usage_count", by_chat | {("gen_ai_token_type", "input")})]
    assert tokens >= sent
    assert found[("gateway_requests_in_flight", frozenset())] == 0
    assert ("gateway_compute_tasks_pending", frozenset()) in found
    # Both workers wrote records; their writers' counts are summed too.
    wait_until(lambda: value(gateway, "gateway_records_total", state="written") >= sent)
    assert value(gateway, "gateway_records_total", state="dropped") == 0


def test_upstream_failures_and_refusals_are_counted(gateway: GatewayServer) -> None:
    client = gateway.openai_client()
    failures = value(gateway, "gateway_upstream_errors_total", cluster="alpha",
                     model="fake-model", error_type="upstream_error")  # fmt: skip
    # Refused before its model was read: the catalog's cluster, no model.
    refused = value(gateway, "gateway_requests_total", cluster="alpha", model="",
                    operation="chat/completions", status="401")  # fmt: skip
    answer = httpx2.post(
        f"{gateway.url}/resource_server/alpha/vllm/v1/chat/completions",
        json={"model": "fake-model", "messages": [{"role": "user", "content": "x"}],
              "fake": {"status": 500}},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=10,
    )  # fmt: skip
    assert answer.status_code == 502
    assert (
        httpx2.post(
            f"{gateway.url}/resource_server/alpha/vllm/v1/chat/completions", json={}, timeout=10
        ).status_code
        == 401
    )
    client.close()
    wait_until(
        lambda: value(gateway, "gateway_upstream_errors_total", cluster="alpha",
                      model="fake-model", error_type="upstream_error") == failures + 1
    )  # fmt: skip
    wait_until(
        lambda: value(gateway, "gateway_requests_total", cluster="alpha", model="",
                      operation="chat/completions", status="401") == refused + 1
    )  # fmt: skip
