"""Responses on a Globus Compute endpoint (COMPUTE_EXECUTOR=local): the registered function is
called with openai_endpoint "chat/completions" and the answer translated; streams come back
over the side channel. Called with the official openai client, cluster-scoped and federated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openai
import orjson
import pytest

from resource_server_async.compute.functions import INFERENCE
from tests.anthropic.fake_messages_backend import MessagesBackend
from tests.compute.catalog import cluster_row, endpoint_row, local_executor_env, write_fixtures
from tests.compute.conftest import STREAMING_SECRET
from tests.responses.test_responses import FORCED, WEATHER
from tests.servers import GatewayServer, free_port

pytestmark = pytest.mark.e2e

CLUSTER = "compute-hpc"


@pytest.fixture(scope="module")
def compute_gateway(
    tmp_path_factory: pytest.TempPathFactory, chat_backend: MessagesBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("responses-compute")
    config = {
        "api_port": chat_backend.port,
        "endpoint_uuid": str(uuid.uuid4()),
        "function_uuid": INFERENCE.local_uuid,
    }
    cluster = cluster_row(1, CLUSTER, {"jobs_from": "endpoints"})
    cluster["fields"]["openai_endpoints"] = ["chat/completions", "responses"]
    fixtures = write_fixtures(
        tmp / "fixtures",
        [cluster],
        [
            endpoint_row(1, CLUSTER, "compute-model", {**config, "responses_api": "translate"}),
            endpoint_row(2, CLUSTER, "auto-model", config),
        ],
    )
    port = free_port()
    env = {**local_executor_env(port), "INTERNAL_STREAMING_SECRET": STREAMING_SECRET}
    with GatewayServer(tmp, fixtures=fixtures, env=env, port=port) as server:
        yield server


@pytest.fixture(scope="module")
def compute_client(compute_gateway: GatewayServer) -> openai.OpenAI:
    return compute_gateway.openai_client(f"/resource_server/{CLUSTER}/vllm/v1")


def test_create_text(compute_client: openai.OpenAI, chat_backend: MessagesBackend) -> None:
    response = compute_client.responses.create(model="compute-model", input="on the cluster")

    assert response.output_text == "Echo: on the cluster"
    assert response.status == "completed"
    assert chat_backend.requests_to("/v1/chat/completions")[-1].json["messages"] == [
        {"role": "user", "content": "on the cluster"}
    ]


def test_auto_falls_back_after_the_servers_404(compute_client: openai.OpenAI) -> None:
    response = compute_client.responses.create(model="auto-model", input="auto here")

    assert response.output_text == "Echo: auto here"


def test_stream_text(compute_client: openai.OpenAI) -> None:
    with compute_client.responses.stream(model="compute-model", input="side channel") as stream:
        final = stream.get_final_response()

    assert final.output_text == "Echo: side channel"


def test_create_and_stream_a_forced_function_call(compute_client: openai.OpenAI) -> None:
    created = compute_client.responses.create(
        model="compute-model", input="weather in Oslo", tools=[WEATHER], tool_choice=FORCED
    )
    with compute_client.responses.stream(
        model="compute-model", input="weather in Oslo", tools=[WEATHER], tool_choice=FORCED
    ) as stream:
        streamed = stream.get_final_response()

    for response in (created, streamed):
        (call,) = response.output
        assert call.type == "function_call" and call.name == "get_weather"
        assert orjson.loads(call.arguments) == {"query": "weather in Oslo"}


def test_federated(compute_gateway: GatewayServer) -> None:
    client = compute_gateway.openai_client("/resource_server/v1")
    with client.responses.stream(model="compute-model", input="anywhere") as stream:
        final = stream.get_final_response()

    assert final.output_text == "Echo: anywhere"


def test_stream_cut_midway_raises(compute_client: openai.OpenAI) -> None:
    with (
        pytest.raises(openai.APIError),
        compute_client.responses.stream(
            model="compute-model", input="x", extra_body={"fake": {"chunks": 20, "stop_after": 3}}
        ) as stream,
    ):
        for _ in stream:
            pass
