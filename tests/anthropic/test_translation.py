"""Messages -> chat/completions request translation, and the chat answer back to Messages."""

from __future__ import annotations

from typing import Any

import pytest

from resource_server_async.errors import GatewayError
from resource_server_async.translation.messages_request import messages_to_chat
from resource_server_async.translation.messages_response import chat_to_message, stop_reason


def request(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "smollm2",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    body.update(fields)
    return body


# --- request ------------------------------------------------------------------------------


def test_plain_request_keeps_sampling_and_drops_metadata() -> None:
    chat = messages_to_chat(
        request(
            temperature=0.2,
            top_p=0.8,
            top_k=40,
            stop_sequences=["END", "STOP"],
            metadata={"user_id": "u-1"},
            min_p=0.05,
        ),
        "SmolLM2-135M-Instruct",
    )
    assert chat == {
        "model": "SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 32,
        "temperature": 0.2,
        "top_p": 0.8,
        "top_k": 40,
        "stop": ["END", "STOP"],
        "min_p": 0.05,
    }


def test_system_as_string_and_as_blocks() -> None:
    as_string = messages_to_chat(request(system="Be brief."), "m")
    assert as_string["messages"][0] == {"role": "system", "content": "Be brief."}
    as_blocks = messages_to_chat(
        request(system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "No."}]),
        "m",
    )
    assert as_blocks["messages"][0] == {"role": "system", "content": "Be brief.\n\nNo."}


def test_text_blocks_become_a_string_and_images_become_parts() -> None:
    chat = messages_to_chat(
        request(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
                {"role": "assistant", "content": "ok"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "QUJD"},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    ],
                },
            ]
        ),
        "m",
    )
    assert chat["messages"] == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            ],
        },
    ]


def test_tools_tool_use_and_tool_results() -> None:
    chat = messages_to_chat(
        request(
            tools=[
                {
                    "name": "get_weather",
                    "description": "Weather of a city",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
                {"name": "now", "input_schema": {"type": "object"}},
            ],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "call it", "signature": "s"},
                        {"type": "text", "text": "Let me look."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "content": [{"type": "text", "text": "no clock"}],
                            "is_error": True,
                        },
                        {"type": "text", "text": "Thanks"},
                    ],
                },
            ],
        ),
        "m",
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "description": "Weather of a city",
            },
        },
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}},
    ]
    assert chat["tool_choice"] == "required"
    assert chat["parallel_tool_calls"] is False
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no clock"},
        {"role": "user", "content": "Thanks"},
    ]


def test_an_assistant_turn_of_only_tool_calls_has_null_content() -> None:
    chat = messages_to_chat(
        request(
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
            ]
        ),
        "m",
    )
    assert chat["messages"][1]["content"] is None
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t", "content": ""}
    assert len(chat["messages"]) == 3  # no empty user turn after the tool result


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "any"}, "required"),
        ({"type": "tool", "name": "w"}, {"type": "function", "function": {"name": "w"}}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any) -> None:
    assert messages_to_chat(request(tool_choice=choice), "m")["tool_choice"] == expected


def test_streaming_asks_for_usage() -> None:
    chat = messages_to_chat(request(stream=True), "m")
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}
    assert "stream" not in messages_to_chat(request(stream=False), "m")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages.0.content.0: a 'document' block cannot be sent to this model, whose "
            "server speaks only OpenAI chat/completions.",
        ),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "tools.0: the server tool 'web_search_20250305' cannot be sent to this model, whose "
            "server speaks only OpenAI chat/completions.",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [
                                    {"type": "image", "source": {"type": "url", "url": "u"}}
                                ],
                            }
                        ],
                    }
                ]
            },
            "messages.0.content.0.content.0: a 'image' block cannot be sent to this model, whose "
            "server speaks only OpenAI chat/completions.",
        ),
    ],
)
def test_what_chat_cannot_carry_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        messages_to_chat(request(**fields), "m")
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        400,
        "untranslatable_request",
        message,
    )


# --- answer ------------------------------------------------------------------------------


def chat_answer(message: dict[str, Any], finish: str = "stop", **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "SmolLM2-135M-Instruct",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def test_text_answer() -> None:
    message = chat_to_message(
        chat_answer({"role": "assistant", "content": "Hello!"}), "smollm2", []
    )
    assert message.pop("id").startswith("msg_")
    assert message == {
        "type": "message",
        "role": "assistant",
        "model": "smollm2",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 7},
    }


def test_tool_call_answer() -> None:
    message = chat_to_message(
        chat_answer(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {"type": "function", "function": {"name": "now", "arguments": "{oops"}},
                ],
            },
            "tool_calls",
        ),
        "m",
        [],
    )
    first, second = message["content"]
    assert first == {
        "type": "tool_use",
        "id": "call_9",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert second["id"].startswith("toolu_")
    assert second["input"] == {"_unparsed_arguments": "{oops"}
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("finish", "matched", "tools", "expected"),
    [
        ("stop", None, False, ("end_turn", None)),
        ("length", None, False, ("max_tokens", None)),
        ("tool_calls", None, True, ("tool_use", None)),
        ("stop", None, True, ("tool_use", None)),
        ("stop", "END", False, ("stop_sequence", "END")),
        ("stop", "OTHER", False, ("end_turn", None)),
        ("stop", 128001, False, ("end_turn", None)),
        ("content_filter", None, False, ("refusal", None)),
        ("abort", None, False, ("end_turn", None)),
        (None, None, False, (None, None)),
    ],
)
def test_stop_reasons(
    finish: str | None, matched: Any, tools: bool, expected: tuple[str | None, str | None]
) -> None:
    assert stop_reason(finish, matched, ["END"], tools) == expected


def test_stop_sequence_reported_by_vllm() -> None:
    message = chat_to_message(
        chat_answer({"role": "assistant", "content": "1, 2"}, "stop", stop_reason="3"), "m", ["3"]
    )
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "3")


def test_answer_without_usage_counts_zero() -> None:
    chat = chat_answer({"role": "assistant", "content": "x"})
    del chat["usage"]
    assert chat_to_message(chat, "m", [])["usage"] == {"input_tokens": 0, "output_tokens": 0}


@pytest.mark.parametrize(
    ("chat", "reason"),
    [([], "not a JSON object"), ({"choices": []}, "no choices"), ({"object": "x"}, "no choices")],
)
def test_malformed_answers_are_502(chat: Any, reason: str) -> None:
    with pytest.raises(GatewayError) as caught:
        chat_to_message(chat, "m", [])
    assert (caught.value.status, caught.value.message) == (
        502,
        f"The model server's answer is malformed: {reason}.",
    )
