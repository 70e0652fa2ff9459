"""The real model through the real gateway: SmolLM2 on llama-cpp-python, called with the clients.

The model's words are not fixed, so these tests check the structure of its answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from openai import AsyncOpenAI, OpenAI

from scripts import model_server
from tests.inference.catalog_files import CatalogFiles
from tests.model_server import MODEL_NAME, ModelServer, needs_model_server
from tests.servers import GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.model, needs_model_server]

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# Most tokens SmolLM2's chat template adds around one turn (`<|im_start|>user\n`, `<|im_end|>\n`).
TEMPLATE_TOKENS = 6


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, smollm2: ModelServer
) -> Iterator[GatewayServer]:
    files = CatalogFiles()
    files.cluster("local", frameworks=["llama-cpp"], operations=["chat/completions", "messages"])
    files.endpoint(
        "local",
        MODEL_NAME,
        smollm2.url,
        framework="llama-cpp",
        tokenizer={"kind": "llama-cpp-python"},
    )
    tmp: Path = tmp_path_factory.mktemp("smollm2-gateway")
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures")) as server:
        yield server


def test_chat_completion_with_the_openai_client(gateway: GatewayServer) -> None:
    client = OpenAI(
        base_url=f"{gateway.url}/resource_server/local/llama-cpp/v1",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=120,
    )
    answer = client.chat.completions.create(
        model="smollm2-135m-instruct", messages=QUESTION, max_tokens=16, temperature=0
    )

    assert answer.object == "chat.completion"
    assert answer.model == MODEL_NAME
    (choice,) = answer.choices
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert answer.usage is not None
    assert 0 < answer.usage.completion_tokens <= 16
    assert answer.usage.prompt_tokens > 0


def test_streamed_chat_with_the_openai_client(gateway: GatewayServer) -> None:
    client = OpenAI(
        base_url=f"{gateway.url}/resource_server/local/llama-cpp/v1",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=120,
    )
    stream = client.chat.completions.create(
        model=MODEL_NAME, messages=QUESTION, max_tokens=8, temperature=0, stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len([p for p in pieces if p]) > 1
    assert "".join(pieces).strip()


def test_messages_with_the_anthropic_client(gateway: GatewayServer) -> None:
    # llama-cpp-python has no /v1/messages: the gateway finds out and translates.
    client = anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server/local/llama-cpp",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=120,
    )
    message = client.messages.create(
        model=MODEL_NAME, max_tokens=8, system="Answer briefly.", messages=QUESTION
    )
    assert message.id.startswith("msg_")
    (block,) = message.content
    assert block.type == "text" and block.text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert 0 < message.usage.output_tokens <= 8

    with client.messages.stream(model=MODEL_NAME, max_tokens=8, messages=QUESTION) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip()
    assert final.stop_reason in ("end_turn", "max_tokens")


def test_count_tokens_and_models_list_with_the_anthropic_client(gateway: GatewayServer) -> None:
    client = anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server/local/llama-cpp",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=120,
    )
    request: dict[str, Any] = {"system": "Answer briefly.", "messages": QUESTION}

    counted = client.messages.count_tokens(model=MODEL_NAME, **request)
    message = client.messages.create(model=MODEL_NAME, max_tokens=4, **request)

    # llama-cpp-python's tokenizer counts the turns' text; the prompt the model saw adds the
    # chat template's markup: a few tokens per turn (2 turns and the assistant's opening).
    reported = message.usage.input_tokens
    assert 0 < counted.input_tokens <= reported <= counted.input_tokens + 3 * TEMPLATE_TOKENS
    models = list(client.models.list())
    assert [(model.type, model.id) for model in models] == [("model", MODEL_NAME)]


# --- the demo's server settings (issue 9, item 21) ---------------------------------------------

# About 3,000 tokens of SmolLM2's tokenizer (24 per line): what a coding agent's first request
# measures, more than llama-cpp-python's default context of 2,048.
LONG_PROMPT = "\n".join(
    f"Note {n}: the parcel for room {n} goes to the blue door on floor {n % 7}." for n in range(125)
)
LONG_QUESTION = [
    {"role": "user", "content": LONG_PROMPT + "\n\nWhich colour is the door? Answer in one word."}
]


async def test_concurrent_streams_queue_instead_of_cutting_each_other(
    gateway: GatewayServer,
) -> None:
    client = AsyncOpenAI(
        base_url=f"{gateway.url}/resource_server/local/llama-cpp/v1",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=120,
    )

    async def one_stream(n: int) -> tuple[str, str | None]:
        stream = await client.chat.completions.create(
            model=MODEL_NAME,
            messages=[{"role": "user", "content": f"Count from {n} to {n + 20}."}],
            max_tokens=24,
            temperature=0,
            stream=True,
        )
        text, finish = "", None
        async for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        return text, finish

    try:
        results = await asyncio.gather(*(one_stream(n) for n in range(5)))
    finally:
        await client.close()

    # With llama-cpp-python's default interrupt_requests, each new request ended the stream
    # being generated: 4 of 5 came back without a finish reason.
    assert [finish in ("stop", "length") for _, finish in results] == [True] * 5, results
    assert all(text.strip() for text, _ in results), results


def test_a_long_prompt_gets_a_real_answer(gateway: GatewayServer) -> None:
    client = OpenAI(
        base_url=f"{gateway.url}/resource_server/local/llama-cpp/v1",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=120,
    )

    answer = client.chat.completions.create(
        model=MODEL_NAME, messages=LONG_QUESTION, max_tokens=8, temperature=0
    )

    assert answer.usage is not None
    assert 2_500 < answer.usage.prompt_tokens < 4_000 < model_server.CONTEXT_TOKENS
    (choice,) = answer.choices
    assert choice.finish_reason in ("stop", "length")
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert answer.usage.completion_tokens > 0


def test_a_long_prompt_streams_through_the_messages_translation(gateway: GatewayServer) -> None:
    # Coding agents speak Messages; at a 2,048-token context this stream came back empty.
    client = anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server/local/llama-cpp",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=120,
    )

    with client.messages.stream(model=MODEL_NAME, max_tokens=8, messages=LONG_QUESTION) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text.strip()
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.output_tokens > 0
