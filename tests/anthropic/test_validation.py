"""Anthropic Messages request checks: each bad field gets a 400 that names it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.schemas.anthropic import validate_messages_request


def request(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def refusal(body: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        validate_messages_request(body)
    return caught.value


def test_a_complete_request_passes() -> None:
    validate_messages_request(
        request(
            system=[{"type": "text", "text": "Be brief."}],
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
                        },
                    ],
                },
            ],
            temperature=0.5,
            top_p=0.9,
            top_k=-1,
            stop_sequences=["END"],
            stream=True,
            tools=[{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "w"},
            metadata={"user_id": "u"},
            min_p=0.1,  # a server's own option: not Anthropic's to refuse
        )
    )


def test_the_error_renders_in_anthropic_dialect() -> None:
    error = refusal(request(max_tokens=...))
    assert error.status == 400
    assert orjson.loads(error.render(Dialect.ANTHROPIC)) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": ...}, "model: Field required"),
        ({"model": ""}, "model: must be a non-empty string"),
        ({"model": 3}, "model: must be a non-empty string"),
        ({"max_tokens": 0}, "max_tokens: must be an integer >= 1, not 0"),
        ({"max_tokens": "10"}, "max_tokens: must be an integer >= 1, not '10'"),
        ({"max_tokens": True}, "max_tokens: must be an integer >= 1, not True"),
        ({"max_tokens": 1.5}, "max_tokens: must be an integer >= 1, not 1.5"),
        ({"messages": ...}, "messages: Field required"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": "hi"}, "messages: must be an array, not string"),
        ({"messages": ["hi"]}, "messages.0: a message must be an object, not string"),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            "messages.0.role: must be 'user', 'assistant' or 'system', not 'tool'",
        ),
        ({"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
        (
            {"messages": [{"role": "system", "content": 5}]},
            "messages.0.content: must be a string or an array of text blocks, not number",
        ),
        (
            {"messages": [{"role": "system", "content": [{"type": "image"}]}]},
            "messages.0.content.0: system blocks must be objects of type 'text'",
        ),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content: must be a string or an array of content blocks, not number",
        ),
        (
            {"messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "messages.0.content.0.type: Field required",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text: Field required and must be a string",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
            "messages.0.content.0.source.type: must be 'base64' or 'url'",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "base64", "data": "A"}}],
                    }
                ]
            },
            "messages.0.content.0.source.media_type: Field required and must be a string",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n"}]}
                ]
            },
            "messages.0.content.0.input: Field required and must be an object",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
            "messages.0.content.0.tool_use_id: Field required and must be a non-empty string",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": 1}],
                    }
                ]
            },
            "messages.0.content.0.is_error: must be a boolean",
        ),
        ({"system": 3}, "system: must be a string or an array of text blocks"),
        ({"system": [{"type": "image"}]}, "system.0: system blocks must be objects of type 'text'"),
        ({"temperature": -0.1}, "temperature: must be a number >= 0"),
        ({"temperature": "hot"}, "temperature: must be a number >= 0"),
        ({"top_p": 1.5}, "top_p: must be a number between 0 and 1"),
        ({"top_k": 2.5}, "top_k: must be an integer"),
        ({"stop_sequences": "END"}, "stop_sequences: must be an array of strings"),
        ({"stop_sequences": [1]}, "stop_sequences: must be an array of strings"),
        ({"stream": "yes"}, "stream: must be a boolean"),
        ({"tools": {}}, "tools: must be an array, not object"),
        (
            {"tools": [{"input_schema": {}}]},
            "tools.0.name: Field required and must be a non-empty string",
        ),
        ({"tools": [{"name": "w"}]}, "tools.0.input_schema: Field required and must be an object"),
        (
            {"tools": [{"name": "w", "input_schema": {}, "description": 1}]},
            "tools.0.description: must be a string",
        ),
        ({"tool_choice": "auto"}, 'tool_choice: must be an object such as {"type": "auto"}'),
        (
            {"tool_choice": {"type": "some"}},
            "tool_choice.type: must be one of auto, any, tool, none",
        ),
        (
            {"tool_choice": {"type": "tool"}},
            "tool_choice.name: Field required when tool_choice.type is 'tool'",
        ),
        ({"metadata": "x"}, "metadata: must be an object"),
    ],
)
def test_each_bad_field_is_named(fields: dict[str, Any], message: str) -> None:
    error = refusal(request(**fields))
    assert (error.status, error.code, error.message) == (400, "invalid_request", message)
    assert error.param == message.split(":")[0]
