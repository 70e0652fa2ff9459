"""Anthropic Messages through the real gateway, called with the official anthropic client."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.anthropic.conftest import ClientFactory
from tests.anthropic.fake_messages_backend import MessagesBackend

pytestmark = pytest.mark.e2e

HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
}


# --- translation to chat/completions ----------------------------------------------------------


def test_create_on_a_chat_only_server_is_translated(
    client: anthropic.Anthropic, chat_backend: MessagesBackend
) -> None:
    message = client.messages.create(model="chat-model", max_tokens=50, messages=HELLO)

    assert message.id.startswith("msg_")
    assert (message.type, message.role, message.model) == ("message", "assistant", "chat-model")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Echo: hello there"  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2, 3)
    sent = chat_backend.last
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {"model": "chat-model", "messages": HELLO, "max_tokens": 50}


def test_a_404_on_messages_is_remembered(
    client: anthropic.Anthropic, chat_backend: MessagesBackend
) -> None:
    for _ in range(3):
        client.messages.create(model="chat-model", max_tokens=5, messages=HELLO)
    # Whatever test ran first paid the one probe; nobody asks the server again.
    assert len(chat_backend.requests_to("/v1/messages")) == 1


def test_translate_mode_skips_messages_even_on_a_server_that_speaks_it(
    client: anthropic.Anthropic, native_backend: MessagesBackend
) -> None:
    message = client.messages.create(model="translate-model", max_tokens=50, messages=HELLO)

    assert message.content[0].text == "Echo: hello there"  # type: ignore[union-attr]
    assert native_backend.last.path == "/v1/chat/completions"


def test_system_prompt_as_string_and_as_blocks(
    client: anthropic.Anthropic, chat_backend: MessagesBackend
) -> None:
    client.messages.create(
        model="chat-model", max_tokens=20, system="Answer in French.", messages=HELLO
    )
    assert chat_backend.last.json["messages"][0] == {
        "role": "system",
        "content": "Answer in French.",
    }
    client.messages.create(
        model="chat-model",
        max_tokens=20,
        system=[
            {"type": "text", "text": "Answer in French."},
            {"type": "text", "text": "Be brief."},
        ],
        messages=HELLO,
    )
    assert chat_backend.last.json["messages"][0] == {
        "role": "system",
        "content": "Answer in French.\n\nBe brief.",
    }


def test_sampling_fields_pass_and_metadata_is_dropped(
    client: anthropic.Anthropic, chat_backend: MessagesBackend
) -> None:
    client.messages.create(
        model="chat-model",
        max_tokens=20,
        messages=HELLO,
        metadata={"user_id": "u-42"},
        # This SDK version has no sampling arguments of its own; older ones send the same keys.
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 20, "min_p": 0.05},
    )
    sent = chat_backend.last.json
    assert (sent["temperature"], sent["top_p"], sent["top_k"], sent["min_p"]) == (
        0.3,
        0.9,
        20,
        0.05,
    )
    assert "metadata" not in sent


def test_stop_reason_max_tokens(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="chat-model",
        max_tokens=2,
        messages=[{"role": "user", "content": "one two three four"}],
    )
    assert message.content[0].text == "Echo: one"  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens"


def test_stop_reason_stop_sequence(
    client: anthropic.Anthropic, chat_backend: MessagesBackend
) -> None:
    message = client.messages.create(
        model="chat-model",
        max_tokens=50,
        stop_sequences=["three"],
        messages=[{"role": "user", "content": "one two three four"}],
    )
    assert chat_backend.last.json["stop"] == ["three"]
    assert message.content[0].text == "Echo: one two"  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "three")


def test_streaming_translated(client: anthropic.Anthropic, chat_backend: MessagesBackend) -> None:
    with client.messages.stream(
        model="chat-model",
        max_tokens=50,
        messages=[{"role": "user", "content": "stream me please"}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    assert "".join(pieces) == "Echo: stream me please"
    assert len(pieces) == 4
    assert final.content[0].text == "Echo: stream me please"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (3, 4)
    assert chat_backend.last.json["stream_options"] == {"include_usage": True}


def test_streaming_event_sequence(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="chat-model", max_tokens=50, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
    # The SDK adds its own "text" events after each text delta; the wire events are in order.
    wire = [kind for kind in kinds if kind != "text"]
    assert wire == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_tool_use_round_trip(client: anthropic.Anthropic, chat_backend: MessagesBackend) -> None:
    question: Any = {"role": "user", "content": "Weather in Paris?"}
    first = client.messages.create(
        model="chat-model", max_tokens=100, tools=[WEATHER_TOOL], messages=[question]
    )
    assert first.stop_reason == "tool_use"
    (call,) = first.content
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("get_weather", {"query": "Weather in Paris?"})
    sent = chat_backend.last.json
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER_TOOL["input_schema"],
                "description": "Current weather of a city",
            },
        }
    ]

    second = client.messages.create(
        model="chat-model",
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C"}],
            },
        ],
    )
    assert second.content[0].text == "Tool said: 18C"  # type: ignore[union-attr]
    assert second.stop_reason == "end_turn"
    history = chat_backend.last.json["messages"]
    assert history[1]["tool_calls"][0]["id"] == call.id
    assert history[2] == {"role": "tool", "tool_call_id": call.id, "content": "18C"}


def test_tool_use_streamed(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="chat-model",
        max_tokens=100,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        final = stream.get_final_message()
    (call,) = final.content
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("get_weather", {"query": "Weather in Oslo?"})
    assert final.stop_reason == "tool_use"


def test_federated_route(make_client: ClientFactory) -> None:
    message = make_client(cluster=None).messages.create(
        model="chat-model", max_tokens=50, messages=HELLO
    )
    assert message.content[0].text == "Echo: hello there"  # type: ignore[union-attr]


def test_bearer_authorization_works_too(make_client: ClientFactory, gateway: Any) -> None:
    client = make_client(api_key=None, auth_token=gateway.api_key)
    message = client.messages.create(model="chat-model", max_tokens=5, messages=HELLO)
    assert message.role == "assistant"


# --- pass-through -----------------------------------------------------------------------------


def test_create_on_a_server_that_speaks_messages_is_passed_through(
    client: anthropic.Anthropic, native_backend: MessagesBackend
) -> None:
    message = client.messages.create(
        model="NATIVE-model", max_tokens=50, messages=HELLO, metadata={"user_id": "u"}
    )

    assert message.content[0].text == "Native: hello there"  # type: ignore[union-attr]
    assert message.id.startswith("msg_native_")
    sent = native_backend.last
    assert sent.path == "/v1/messages"
    # The body as the client sent it, with the served model name.
    assert sent.json == {
        "model": "native-model",
        "max_tokens": 50,
        "messages": HELLO,
        "metadata": {"user_id": "u"},
    }


def test_streaming_passed_through(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="native-model", max_tokens=50, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Native: hello there"
    assert final.stop_reason == "end_turn"
