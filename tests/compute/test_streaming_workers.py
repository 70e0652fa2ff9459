"""Streams across worker processes with Redis: the side-channel POST lands on another process
than the client's connection.

Gateway A (two uvicorn workers) takes the clients' requests; its functions (local executor) send
their chunks to gateway B, a separate process on the same database and Redis. So every chunk
crosses processes through the Redis stream hub. Runs when REDIS_URL is set (the CI's second run).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from resource_server_async.compute.functions import INFERENCE
from tests.compute.catalog import cluster_row, endpoint_row, local_executor_env, write_fixtures
from tests.compute.conftest import STREAMING_SECRET
from tests.fake_backend import FakeBackend
from tests.servers import GatewayServer, free_port

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set (the CI's second run sets it)"),
]


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[GatewayServer]:
    tmp: Path = tmp_path_factory.mktemp("streaming-workers")
    endpoint_uuid = str(uuid.uuid4())
    config = {
        "api_port": backend.port,
        "endpoint_uuid": endpoint_uuid,
        "function_uuid": INFERENCE.local_uuid,
    }
    status = {"qstat_endpoint_uuid": endpoint_uuid, "qstat_function_uuid": INFERENCE.local_uuid}
    fixtures = write_fixtures(
        tmp / "fixtures",
        [cluster_row(1, "hpc", status)],
        [endpoint_row(1, "hpc", "fake-model", config)],
    )
    receiver_port = free_port()
    common = {
        **local_executor_env(receiver_port),
        "REDIS_URL": REDIS_URL,
        "CACHE_KEY_PREFIX": f"test-workers-{uuid.uuid4().hex[:8]}",
        "INTERNAL_STREAMING_SECRET": STREAMING_SECRET,
        "STREAMING_IDLE_TIMEOUT": "10",
    }
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    with GatewayServer(tmp / "a", fixtures=fixtures, env=dict(common), workers=2) as clients_side:
        receiver_env = {**common, "DATABASE_URL": clients_side.env["DATABASE_URL"]}
        with GatewayServer(tmp / "b", env=receiver_env, port=receiver_port):
            yield clients_side


def test_concurrent_streams_cross_processes_intact(gateway: GatewayServer) -> None:
    client = openai.OpenAI(
        base_url=f"{gateway.url}/resource_server/hpc/vllm/v1",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=30,
    )
    texts: dict[int, str] = {}
    failures: list[BaseException] = []

    def consume(index: int) -> None:
        try:
            stream = client.chat.completions.create(
                model="fake-model",
                messages=[{"role": "user", "content": f"stream-{index}"}],
                stream=True,
                extra_body={"fake": {"chunks": 15, "chunk_delay": 0.01}},
            )
            texts[index] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=consume, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert failures == []
    expected_tail = " ".join(f"w{i}" for i in range(2, 15))
    assert texts == {index: f"Echo: stream-{index} {expected_tail}" for index in range(6)}


def test_non_streaming_still_works_on_both_workers(gateway: GatewayServer) -> None:
    client = openai.OpenAI(
        base_url=f"{gateway.url}/resource_server/hpc/vllm/v1",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=30,
    )
    for index in range(4):
        answer = client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": f"n{index}"}]
        )
        assert answer.choices[0].message.content == f"Echo: n{index}"
