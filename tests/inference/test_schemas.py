"""Unit tests of the OpenAI request checks and of the JSON Schema generated from the same rules."""

from __future__ import annotations

from typing import Any

import pytest

from resource_server_async.errors import GatewayError
from resource_server_async.schemas.openai import REQUESTS, validate
from resource_server_async.schemas.rules import FieldRule, RequestSchema

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def problem(operation: str, body: dict[str, Any]) -> tuple[int, str, str | None, str]:
    with pytest.raises(GatewayError) as caught:
        validate(operation, body)
    error = caught.value
    return error.status, error.code, error.param, error.message


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("chat/completions", CHAT),
        (
            "chat/completions",
            {
                **CHAT,
                "temperature": 0,
                "top_p": 1,
                "n": 2,
                "max_tokens": 1,
                "max_completion_tokens": 2.0,  # an integral float, as vLLM accepts
                "stop": ["\n", "END"],
                "stream": True,
                "stream_options": {"include_usage": True},
                "presence_penalty": -2,
                "frequency_penalty": 2,
                "seed": -1,
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": "auto",
                "response_format": {"type": "json_object"},
                "logprobs": True,
                "top_logprobs": 5,
            },
        ),
        # Fields OpenAI does not define are never looked at: vLLM's, or anything.
        (
            "chat/completions",
            {
                **CHAT,
                "top_k": -1,
                "min_p": 0.1,
                "repetition_penalty": 1.2,
                "guided_json": {"type": "object"},
                "guided_regex": "[a-z]+",
                "chat_template_kwargs": {"enable_thinking": False},
                "anything": object(),
            },
        ),
        # null means "not set" for optional fields.
        ("chat/completions", {**CHAT, "temperature": None, "stop": None, "max_tokens": None}),
        ("chat/completions", {"model": "m", "messages": [{"role": "tool", "content": None}]}),
        (
            "chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
        ),
        ("completions", {"model": "m", "prompt": "p", "max_tokens": 0, "echo": True}),
        ("completions", {"model": "m", "prompt": [[1, 2], [3]], "logprobs": 3}),
        ("embeddings", {"model": "m", "input": ["a", "b"], "dimensions": 3}),
        ("embeddings", {"model": "m", "messages": [{"role": "user", "content": "x"}]}),
        ("responses", {"model": "m", "input": "hi", "max_output_tokens": 16}),
        ("responses", {"model": "m", "input": [{"role": "user", "content": "hi"}]}),
    ],
)
def test_valid_requests_pass(operation: str, body: dict[str, Any]) -> None:
    validate(operation, body)


@pytest.mark.parametrize(
    ("operation", "body", "expected"),
    [
        (
            "chat/completions",
            {"messages": []},
            (400, "missing_required_parameter", "model", "Missing required parameter: 'model'."),
        ),
        (
            "chat/completions",
            {"model": "m"},
            (
                400,
                "missing_required_parameter",
                "messages",
                "Missing required parameter: 'messages'.",
            ),
        ),
        (
            "chat/completions",
            {**CHAT, "model": 7},
            (
                400,
                "invalid_type",
                "model",
                "Invalid type for 'model': expected a string, got an integer.",
            ),
        ),
        (
            "chat/completions",
            {**CHAT, "model": "  "},
            (400, "invalid_value", "model", "'model' must name a model, not be empty."),
        ),
        (
            "chat/completions",
            {**CHAT, "model": None},
            (400, "invalid_type", "model", "'model' must not be null."),
        ),
        (
            "chat/completions",
            {**CHAT, "messages": {"role": "user"}},
            (
                400,
                "invalid_type",
                "messages",
                "Invalid type for 'messages': expected an array, got an object.",
            ),
        ),
        (
            "chat/completions",
            {"model": "m", "messages": [{"role": "user"}, {"role": 3}]},
            (
                400,
                "invalid_type",
                "messages[1].role",
                "Invalid type for 'messages[1].role': expected a string, got an integer.",
            ),
        ),
        (
            "chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": 5}]},
            (
                400,
                "invalid_type",
                "messages[0].content",
                "Invalid type for 'messages[0].content': expected a string or an array of "
                "content parts, got an integer.",
            ),
        ),
        (
            "chat/completions",
            {**CHAT, "temperature": True},
            (
                400,
                "invalid_type",
                "temperature",
                "Invalid type for 'temperature': expected a number, got a boolean.",
            ),
        ),
        (
            "chat/completions",
            {**CHAT, "temperature": -0.1},
            (
                400,
                "invalid_value",
                "temperature",
                "Invalid 'temperature': must be between 0 and 2, got -0.1.",
            ),
        ),
        (
            "chat/completions",
            {**CHAT, "n": 1.5},
            (400, "invalid_type", "n", "Invalid type for 'n': expected an integer, got a number."),
        ),
        (
            "chat/completions",
            {**CHAT, "max_completion_tokens": 0},
            (
                400,
                "invalid_value",
                "max_completion_tokens",
                "Invalid 'max_completion_tokens': must be at least 1, got 0.",
            ),
        ),
        (
            "chat/completions",
            {**CHAT, "presence_penalty": 2.5},
            (
                400,
                "invalid_value",
                "presence_penalty",
                "Invalid 'presence_penalty': must be between -2 and 2, got 2.5.",
            ),
        ),
        (
            "chat/completions",
            {**CHAT, "stop": ["ok", 3]},
            (
                400,
                "invalid_type",
                "stop[1]",
                "Invalid type for 'stop[1]': expected a string, got an integer.",
            ),
        ),
        (
            "chat/completions",
            {**CHAT, "tools": ["f"]},
            (
                400,
                "invalid_type",
                "tools[0]",
                "Invalid type for 'tools[0]': expected an object, got a string.",
            ),
        ),
        (
            "chat/completions",
            {**CHAT, "tool_choice": 1},
            (
                400,
                "invalid_type",
                "tool_choice",
                "Invalid type for 'tool_choice': expected a string or an object, got an integer.",
            ),
        ),
        (
            "completions",
            {"model": "m", "prompt": 5},
            (
                400,
                "invalid_type",
                "prompt",
                "Invalid type for 'prompt': expected a string or an array, got an integer.",
            ),
        ),
        (
            "completions",
            {"model": "m", "prompt": "p", "max_tokens": -1},
            (
                400,
                "invalid_value",
                "max_tokens",
                "Invalid 'max_tokens': must be at least 0, got -1.",
            ),
        ),
        (
            "embeddings",
            {"model": "m"},
            (
                400,
                "missing_required_parameter",
                "input",
                "Missing required parameter: 'input' or 'messages'.",
            ),
        ),
        (
            "embeddings",
            {"model": "m", "input": "x", "dimensions": 0},
            (
                400,
                "invalid_value",
                "dimensions",
                "Invalid 'dimensions': must be at least 1, got 0.",
            ),
        ),
        (
            "responses",
            {"model": "m", "input": "x", "max_output_tokens": 0},
            (
                400,
                "invalid_value",
                "max_output_tokens",
                "Invalid 'max_output_tokens': must be at least 1, got 0.",
            ),
        ),
        (
            "responses",
            {"model": "m", "input": "x", "stream": 1},
            (
                400,
                "invalid_type",
                "stream",
                "Invalid type for 'stream': expected a boolean, got an integer.",
            ),
        ),
    ],
)
def test_invalid_requests_name_the_field(
    operation: str, body: dict[str, Any], expected: tuple[int, str, str, str]
) -> None:
    assert problem(operation, body) == expected


def test_unknown_operation_is_404() -> None:
    assert problem("audio/speech", {"model": "m"})[:2] == (404, "operation_not_found")


def test_json_schema_comes_from_the_same_rules() -> None:
    schema = REQUESTS["embeddings"].json_schema("note")

    assert schema["title"] == "EmbeddingRequest"
    assert schema["required"] == ["model"]
    assert schema["anyOf"] == [{"required": ["input"]}, {"required": ["messages"]}]
    assert schema["additionalProperties"] is True
    assert schema["description"].endswith(" note")
    assert schema["properties"]["dimensions"] == {
        "type": ["integer", "null"],
        "description": "Size of the returned vectors.",
        "minimum": 1,
    }
    assert schema["properties"]["model"]["type"] == "string"  # required: not nullable


def test_rules_of_a_new_family_need_no_code() -> None:
    # The Anthropic family (or any other) declares its fields the same way.
    schema = RequestSchema(
        title="T",
        operation="op",
        summary="s",
        fields=(
            FieldRule("model", ("string",), required=True),
            FieldRule("max_tokens", ("integer",), required=True, minimum=1),
            FieldRule("tags", ("array",), item_types=("string",), min_items=2),
        ),
    )

    schema.validate({"model": "m", "max_tokens": 3, "tags": ["a", "b"]})
    with pytest.raises(GatewayError) as caught:
        schema.validate({"model": "m", "max_tokens": 3, "tags": ["a"]})
    assert caught.value.message == "'tags' must have at least 2 items."
    assert schema.json_schema()["properties"]["tags"] == {
        "type": ["array", "null"],
        "minItems": 2,
        "items": {"type": "string"},
    }
