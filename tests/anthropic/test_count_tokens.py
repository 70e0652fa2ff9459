"""messages.count_tokens through the real gateway with the anthropic client: passed through to a
server that speaks Messages, otherwise counted by the server's tokenizer."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.anthropic.conftest import ClientFactory
from tests.anthropic.fake_messages_backend import MessagesBackend

pytestmark = pytest.mark.e2e

TEXTS = ["what is the weather in Lemont today", "Let me look that up for you", "thanks a lot"]
CONVERSATION: list[Any] = [
    {"role": "user", "content": TEXTS[0]},
    {"role": "assistant", "content": TEXTS[1]},
    {"role": "user", "content": [{"type": "text", "text": TEXTS[2]}]},
]
SYSTEM = "You answer in one short sentence."
WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Current weather of a city",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
}


def words(*texts: str) -> int:
    return sum(len(text.split()) for text in texts)


def test_count_tokens_is_passed_through_to_a_server_that_speaks_messages(
    client: anthropic.Anthropic, native_backend: MessagesBackend
) -> None:
    before = len(native_backend.requests_to("/v1/messages/count_tokens"))

    counted = client.messages.count_tokens(
        model="Native-Model", messages=CONVERSATION, system=SYSTEM
    )
    message = client.messages.create(
        model="native-model", max_tokens=20, messages=CONVERSATION, system=SYSTEM
    )

    sent = native_backend.requests_to("/v1/messages/count_tokens")
    assert len(sent) == before + 1
    # As the client sent it, but with the name the server serves.
    assert sent[-1].json == {"model": "native-model", "messages": CONVERSATION, "system": SYSTEM}
    assert counted.input_tokens == message.usage.input_tokens


@pytest.mark.parametrize("model", ["translate-model", "chat-model"])
def test_count_tokens_by_the_tokenizer_agrees_with_the_prompt_tokens_reported(
    client: anthropic.Anthropic, model: str, native_backend: MessagesBackend
) -> None:
    # translate-model's server speaks Messages but is configured to translate; chat-model's
    # server has no Messages at all (its 404 sends the count to the tokenizer).
    counted = client.messages.count_tokens(
        model=model, messages=CONVERSATION, system=SYSTEM, tools=[WEATHER_TOOL]
    )
    message = client.messages.create(
        model=model, max_tokens=20, messages=CONVERSATION, system=SYSTEM
    )

    assert counted.input_tokens == message.usage.input_tokens
    # The fake counts words, so both numbers can be checked against the text itself.
    assert counted.input_tokens == words(SYSTEM, *TEXTS)


def test_the_tokenizer_gets_the_translated_prompt_in_vllms_shape(
    client: anthropic.Anthropic, native_backend: MessagesBackend
) -> None:
    client.messages.count_tokens(
        model="translate-model",
        messages=CONVERSATION,
        system=SYSTEM,
        tools=[WEATHER_TOOL],
        thinking={"type": "disabled"},
    )

    sent = native_backend.requests_to("/tokenize")[-1].json
    assert sent == {
        "model": "translate-model",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": CONVERSATION[0]["content"]},
            {"role": "assistant", "content": CONVERSATION[1]["content"]},
            {"role": "user", "content": "thanks a lot"},
        ],
        "add_generation_prompt": True,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": WEATHER_TOOL["input_schema"],
                    "description": WEATHER_TOOL["description"],
                },
            }
        ],
    }
    # Never sent as a count to /v1/messages/count_tokens: this endpoint translates.
    assert all(
        r.json["model"] != "translate-model"
        for r in native_backend.requests_to("/v1/messages/count_tokens")
    )


@pytest.mark.parametrize(
    ("model", "path", "field"),
    [
        ("text-count-model", "/extras/tokenize/count", "input"),
        ("cpp-count-model", "/tokenize", "content"),
    ],
)
def test_text_tokenizers_count_the_text_of_each_turn(
    client: anthropic.Anthropic, chat_backend: MessagesBackend, model: str, path: str, field: str
) -> None:
    counted = client.messages.count_tokens(model=model, messages=CONVERSATION, system=SYSTEM)

    text = chat_backend.requests_to(path)[-1].json[field]
    assert text == (
        f"system: {SYSTEM}\n\nuser: {CONVERSATION[0]['content']}\n\n"
        f"assistant: {CONVERSATION[1]['content']}\n\nuser: thanks a lot"
    )
    assert counted.input_tokens == len(text.split())


def test_a_server_without_the_configured_tokenizer_is_a_clear_404(
    client: anthropic.Anthropic,
) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.count_tokens(model="lost-count-model", messages=CONVERSATION)

    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "not_found_error"
    assert "/no/tokenizer" in body["error"]["message"]
    assert "config.tokenizer" in body["error"]["message"]


def test_federated_count_tokens(make_client: ClientFactory) -> None:
    federated = make_client(cluster=None)

    counted = federated.messages.count_tokens(model="translate-model", messages=CONVERSATION)

    assert counted.input_tokens == words(*TEXTS)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"messages": []}, "messages: at least one message is required"),
        ({"thinking": "on"}, 'thinking: must be an object such as {"type": "disabled"}'),
        ({"tools": [{"name": "t"}]}, "tools.0.input_schema: Field required and must be an object"),
        ({"model": ""}, "model: must be a non-empty string"),
    ],
)
def test_count_tokens_fields_are_checked_as_in_messages(
    client: anthropic.Anthropic, fields: dict[str, Any], message: str
) -> None:
    body = {"model": "translate-model", "messages": CONVERSATION, **fields}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages/count_tokens", body=body, cast_to=object)

    assert caught.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    }
