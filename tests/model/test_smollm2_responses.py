"""The Responses API against the real model: SmolLM2 on llama-cpp-python, which has no
/v1/responses, so the gateway finds out and translates. Structure is checked, not words."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI, OpenAI

from tests.inference.catalog_files import CatalogFiles
from tests.model_server import MODEL_NAME, ModelServer, needs_model_server
from tests.servers import GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.model, needs_model_server]

set_tracing_disabled(True)

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, smollm2: ModelServer
) -> Iterator[GatewayServer]:
    files = CatalogFiles()
    files.cluster("local", frameworks=["llama-cpp"], operations=["chat/completions", "responses"])
    files.endpoint("local", MODEL_NAME, smollm2.url, framework="llama-cpp")
    tmp: Path = tmp_path_factory.mktemp("smollm2-responses")
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures")) as server:
        yield server


def _client(gateway: GatewayServer) -> OpenAI:
    return OpenAI(
        base_url=f"{gateway.url}/resource_server/local/llama-cpp/v1",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=120,
    )


def test_create_and_stream_text(gateway: GatewayServer) -> None:
    client = _client(gateway)
    response = client.responses.create(
        model=MODEL_NAME,
        instructions="Answer briefly.",
        input="What is the capital of France?",
        max_output_tokens=16,
        temperature=0,
    )

    assert response.id.startswith("resp_")
    assert response.status in ("completed", "incomplete")
    assert response.output_text.strip()
    assert response.usage is not None
    assert 0 < response.usage.output_tokens <= 16 and response.usage.input_tokens > 0

    with client.responses.stream(
        model=MODEL_NAME, input="Say hello.", max_output_tokens=8, temperature=0
    ) as stream:
        events = list(stream)
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1
    # At 8 tokens the answer may stop short: response.incomplete instead of .completed.
    last = events[-1]
    assert last.type in ("response.completed", "response.incomplete")
    assert last.response.output_text == "".join(deltas)


def test_create_and_stream_a_forced_function_call(gateway: GatewayServer) -> None:
    client = _client(gateway)
    forced = {"type": "function", "name": "get_weather"}
    created = client.responses.create(
        model=MODEL_NAME,
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice=forced,
        max_output_tokens=64,
        temperature=0,
    )
    with client.responses.stream(
        model=MODEL_NAME,
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice=forced,
        max_output_tokens=64,
        temperature=0,
    ) as stream:
        streamed = stream.get_final_response()

    for response in (created, streamed):
        calls = [item for item in response.output if item.type == "function_call"]
        assert calls, response.output
        assert calls[0].name == "get_weather" and calls[0].call_id


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"It is sunny in {city}."


def test_agents_sdk_runs_with_a_function_tool(gateway: GatewayServer) -> None:
    client = AsyncOpenAI(
        base_url=f"{gateway.url}/resource_server/local/llama-cpp/v1",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=120,
    )
    agent = Agent(
        name="weather",
        instructions="Use the get_weather tool to answer.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model=MODEL_NAME, openai_client=client),
    )

    result = asyncio.run(Runner.run(agent, "What is the weather in Paris?", max_turns=4))

    assert isinstance(result.final_output, str) and result.final_output.strip()
