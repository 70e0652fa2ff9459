"""End to end across processes on the Globus Compute path: the official openai client, the gateway
under uvicorn, the real globus-sdk / globus-compute-sdk code, the Compute stand-in
(bench/compute_standin.py) in its own process executing the project's inference function, the
fake model backend, and for streams the side channel back into the gateway.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import openai
import pytest
import requests

from bench import compute_standin
from resource_server_async.compute.functions import INFERENCE, PBS_STATUS
from tests.compute.catalog import cluster_row, endpoint_row, write_fixtures
from tests.compute.conftest import STREAMING_SECRET
from tests.compute.standin import running_standin
from tests.fake_backend import FakeBackend
from tests.servers import GatewayServer, free_port

pytestmark = pytest.mark.e2e

CLUSTER = "standin-hpc"
ENDPOINT = str(uuid.uuid4())


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in's URL; the functions it executes reach the model over plain loopback HTTP."""
    log = tmp_path_factory.mktemp("standin") / "standin.log"
    env = {
        **os.environ,
        "INFERENCE_API_BASE_URL": "http://127.0.0.1:{api_port}",
        "INTERNAL_STREAMING_SECRET": STREAMING_SECRET,
    }
    with running_standin(log, [ENDPOINT], env) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend, standin: str
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("standin-gateway")
    config = {
        "api_port": backend.port,
        "endpoint_uuid": ENDPOINT,
        "function_uuid": INFERENCE.local_uuid,
    }
    status = {"qstat_endpoint_uuid": ENDPOINT, "qstat_function_uuid": PBS_STATUS.local_uuid}
    fixtures = write_fixtures(
        tmp / "fixtures",
        [cluster_row(1, CLUSTER, status)],
        [endpoint_row(1, CLUSTER, "fake-model", config)],
    )
    port = free_port()
    env = {
        **compute_standin.gateway_env(standin),
        "STREAMING_SERVER_HOST": "127.0.0.1",
        "STREAMING_SERVER_PORT": str(port),
        "STREAMING_SERVER_PROTOCOL": "http",
        "INTERNAL_STREAMING_SECRET": STREAMING_SECRET,
        "COMPUTE_POLL_INTERVAL": "0.02",
    }
    with GatewayServer(tmp, fixtures=fixtures, env=env, port=port) as server:
        yield server


@pytest.fixture(scope="module")
def client(gateway: GatewayServer) -> openai.OpenAI:
    return gateway.openai_client(f"/resource_server/{CLUSTER}/vllm/v1")


def test_chat_completion_runs_on_the_standin(
    client: openai.OpenAI, backend: FakeBackend, standin: str
) -> None:
    answer = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "across processes"}]
    )

    assert answer.choices[0].message.content == "Echo: across processes"
    assert backend.last.json["model"] == "fake-model"
    counts = requests.get(f"{standin}/standin/health", timeout=5).json()["counts"]
    # The gateway signed in, submitted and polled through the real SDK over HTTP.
    assert counts["token"] >= 1 and counts["submit"] >= 1 and counts["batch_status"] >= 1


def test_stream_comes_back_through_the_side_channel(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        extra_body={"fake": {"chunks": 10}},
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]

    assert "".join(pieces).startswith("Echo: one two three")
    assert len([piece for piece in pieces if piece]) >= 10
