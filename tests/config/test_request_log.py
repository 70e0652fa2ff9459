"""The per-request JSON log line, through a real gateway, the openai client and a real backend:
one line per request with the request's ids, route, model, status and timings; the caller's
key, the prompt and the answer never appear in the log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

PROMPT = "the secret recipe is 7f3a9c plums"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("request-log")
    files = CatalogFiles()
    with FakeBackend() as backend:
        files.cluster("alpha", operations=["chat/completions"])
        files.endpoint("alpha", "fake-model", backend.url)
        env = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "REQUEST_LOG_INTERVAL": "0.05"}
        with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
            yield server


def request_lines(gateway: GatewayServer) -> list[dict[str, Any]]:
    lines = []
    for text in gateway.log_text().splitlines():
        if text.startswith("{"):
            line = json.loads(text)
            if line.get("logger") == "gateway.requests":
                lines.append(line)
    return lines


def test_one_json_line_per_request_without_key_or_prompt(gateway: GatewayServer) -> None:
    client = gateway.openai_client()
    answer = client.chat.completions.with_raw_response.create(
        model="fake-model", messages=[{"role": "user", "content": PROMPT}]
    )
    request_id = answer.headers["x-request-id"]
    assert PROMPT in answer.parse().choices[0].message.content  # the backend echoes it

    def mine() -> list[dict[str, Any]]:
        return [line for line in request_lines(gateway) if line["request_id"] == request_id]

    wait_until(mine)
    [line] = mine()
    assert line["level"] == "INFO"
    assert line["route"] == "cluster"
    assert line["operation"] == "chat/completions"
    assert (line["cluster"], line["model"], line["status"]) == ("alpha", "fake-model", 200)
    assert line["credential"] == "api_key" and line["principal_id"]
    assert line["duration_ms"] > 0 and line["upstream_ms"] > 0
    assert line["prompt_tokens"] > 0
    log = gateway.log_text()
    assert gateway.api_key not in log
    assert gateway.api_key.split("_")[-1][:12] not in log  # nor the key's secret part
    assert "7f3a9c" not in log


def test_a_refused_request_is_logged_once_too(gateway: GatewayServer) -> None:
    response = httpx.post(
        f"{gateway.url}/resource_server/v1/chat/completions",
        headers={"Authorization": "Bearer not-a-real-key-9d8e7f"},
        json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )
    rid = response.headers["x-request-id"]
    wait_until(lambda: any(line["request_id"] == rid for line in request_lines(gateway)))
    lines = [line for line in request_lines(gateway) if line["request_id"] == rid]
    assert [line["status"] for line in lines] == [response.status_code]
    assert response.status_code == 401
    assert "not-a-real-key-9d8e7f" not in gateway.log_text()
