"""Anthropic Messages and count_tokens on Globus Compute endpoints, run by the local executor
(the project's registered function on the gateway's worker pool, streams over the real side
channel), called with the anthropic client."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from resource_server_async.compute.functions import INFERENCE
from tests.anthropic.fake_messages_backend import MessagesBackend
from tests.compute.catalog import cluster_row, endpoint_row, local_executor_env, write_fixtures
from tests.compute.conftest import STREAMING_SECRET
from tests.servers import GatewayServer, free_port

pytestmark = pytest.mark.e2e

CLUSTER = "hpc"
QUESTION: list[Any] = [{"role": "user", "content": "how warm is it"}]


# Backends of their own: the package's fake servers count the probes of its gateway.
@pytest.fixture(scope="module")
def native_backend() -> Iterator[MessagesBackend]:
    with MessagesBackend(native=True) as server:
        yield server


@pytest.fixture(scope="module")
def chat_backend() -> Iterator[MessagesBackend]:
    with MessagesBackend(native=False) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    native_backend: MessagesBackend,
    chat_backend: MessagesBackend,
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("compute-messages")

    def config(backend: MessagesBackend) -> dict[str, Any]:
        return {
            "api_port": backend.port,
            "endpoint_uuid": str(uuid.uuid4()),
            "function_uuid": INFERENCE.local_uuid,
        }

    cluster = cluster_row(1, CLUSTER, {"jobs_from": "endpoints"})
    cluster["fields"]["openai_endpoints"] = ["chat/completions", "messages"]
    fixtures = write_fixtures(
        tmp / "fixtures",
        [cluster],
        [
            endpoint_row(1, CLUSTER, "chat-model", config(chat_backend)),
            endpoint_row(2, CLUSTER, "native-model", config(native_backend)),
        ],
    )
    port = free_port()
    env = {**local_executor_env(port), "INTERNAL_STREAMING_SECRET": STREAMING_SECRET}
    with GatewayServer(tmp, fixtures=fixtures, env=env, port=port) as server:
        yield server


@pytest.fixture(scope="module")
def client(gateway: GatewayServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server/{CLUSTER}/vllm",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=30,
    )


def test_translated_message(client: anthropic.Anthropic, chat_backend: MessagesBackend) -> None:
    message = client.messages.create(model="chat-model", max_tokens=20, messages=QUESTION)

    assert message.content[0].text == "Echo: how warm is it"  # type: ignore[union-attr]
    assert (message.stop_reason, message.usage.input_tokens) == ("end_turn", 4)
    assert chat_backend.requests_to("/v1/chat/completions")[-1].json["messages"] == QUESTION


def test_translated_stream(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="chat-model", max_tokens=40, messages=QUESTION, extra_body={"fake": {"chunks": 12}}
    ) as stream:
        texts = list(stream.text_stream)
        message = stream.get_final_message()

    assert len(texts) >= 12
    assert "".join(texts) == message.content[0].text  # type: ignore[union-attr]
    assert message.content[0].text.startswith("Echo: how warm is it w")  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 12


def test_native_message_and_stream(
    client: anthropic.Anthropic, native_backend: MessagesBackend
) -> None:
    message = client.messages.create(model="native-model", max_tokens=20, messages=QUESTION)
    with client.messages.stream(model="native-model", max_tokens=20, messages=QUESTION) as s:
        streamed = s.get_final_message()

    assert message.content[0].text == "Native: how warm is it"  # type: ignore[union-attr]
    assert streamed.content[0].text == "Native: how warm is it"  # type: ignore[union-attr]


def test_count_tokens_by_the_tokenizer_agrees_with_the_reported_usage(
    client: anthropic.Anthropic, chat_backend: MessagesBackend
) -> None:
    counted = client.messages.count_tokens(
        model="chat-model", messages=QUESTION, system="Be brief."
    )
    message = client.messages.create(
        model="chat-model", max_tokens=20, messages=QUESTION, system="Be brief."
    )

    # The registered function reached the server's root for /tokenize (`../tokenize`).
    assert chat_backend.requests_to("/tokenize")[-1].json["messages"][0]["role"] == "system"
    assert counted.input_tokens == message.usage.input_tokens


def test_count_tokens_passed_through(
    client: anthropic.Anthropic, native_backend: MessagesBackend
) -> None:
    counted = client.messages.count_tokens(model="native-model", messages=QUESTION)

    assert native_backend.requests_to("/v1/messages/count_tokens")[-1].json == {
        "model": "native-model",
        "messages": QUESTION,
    }
    assert counted.input_tokens == 4
