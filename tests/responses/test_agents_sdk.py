"""The OpenAI Agents SDK with its default (Responses) model through the gateway: an agent with
one function tool, run plainly and streamed, on a chat-only server (translated)."""

from __future__ import annotations

import asyncio

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.anthropic.fake_messages_backend import MessagesBackend
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

set_tracing_disabled(True)  # traces would go to OpenAI's service


@function_tool
def city_weather(query: str) -> str:
    """The weather in a city."""
    return f"sunny over {query}"


def _agent(gateway: GatewayServer, model: str) -> Agent:
    client = AsyncOpenAI(
        base_url=f"{gateway.url}/resource_server/resp/vllm/v1",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=20,
    )
    return Agent(
        name="weather",
        instructions="Answer with the tool's help.",
        tools=[city_weather],
        model=OpenAIResponsesModel(model=model, openai_client=client),
    )


@pytest.mark.parametrize("model", ["chat-model", "translate-model"])
def test_agent_runs_a_function_tool(
    gateway: GatewayServer, chat_backend: MessagesBackend, model: str
) -> None:
    result = asyncio.run(Runner.run(_agent(gateway, model), "Paris"))

    assert result.final_output == "Tool said: sunny over Paris"
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]


def test_agent_streamed(gateway: GatewayServer) -> None:
    async def run() -> tuple[str, list[str]]:
        streamed = Runner.run_streamed(_agent(gateway, "chat-model"), "Lima")
        kinds = [event.type async for event in streamed.stream_events()]
        return str(streamed.final_output), kinds

    final, kinds = asyncio.run(run())

    assert final == "Tool said: sunny over Lima"
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
