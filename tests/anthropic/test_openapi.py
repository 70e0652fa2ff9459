"""The Messages request in the OpenAPI document: served by the gateway, and the rules it documents
are the ones the validator applies (cases derived from the document itself)."""

from __future__ import annotations

import copy
from typing import Any

import anthropic
import httpx2
import pytest

from resource_server_async.api.openapi import openapi_document
from resource_server_async.errors import GatewayError
from resource_server_async.schemas.anthropic import (
    FORWARDED_NOTE,
    MESSAGES,
    validate_messages_request,
)
from tests.servers import GatewayServer

CLUSTER_PATH = "/resource_server/{cluster}/{framework}/v1/messages"
FEDERATED_PATH = "/resource_server/v1/messages"

# A request that uses every documented field, each with a value the API accepts.
FULL: dict[str, Any] = {
    "model": "m",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "Hi"}],
    "system": [{"type": "text", "text": "Be brief."}],
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 5,
    "stop_sequences": ["END"],
    "stream": False,
    "tools": [{"name": "w", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "disabled"},
    "metadata": {"user_id": "u"},
}
# A value of each JSON type; "integer" is also a "number" in JSON Schema.
SAMPLES: dict[str, Any] = {
    "string": "x",
    "integer": 3,
    "number": 0.5,
    "boolean": True,
    "array": ["x"],
    "object": {"k": "v"},
    "null": None,
}
# A block of each type the content-block schema has conditions for, valid as it stands.
BLOCKS: dict[str, dict[str, Any]] = {
    "text": {"type": "text", "text": "hi"},
    "image": {"type": "image", "source": {"type": "url", "url": "https://example.org/a.png"}},
    "tool_use": {"type": "tool_use", "id": "t1", "name": "w", "input": {}},
    "tool_result": {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
}


def documented() -> dict[str, Any]:
    return openapi_document()["components"]["schemas"]["MessagesRequest"]


def refusal(body: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        validate_messages_request(body)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_request"
    return caught.value


def with_field(name: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(FULL)
    body[name] = value
    return body


def with_block(block: dict[str, Any]) -> dict[str, Any]:
    return with_field("messages", [{"role": "user", "content": [block]}])


# --- the document, as the gateway serves it -----------------------------------------------------


@pytest.mark.e2e
def test_messages_routes_are_documented(gateway: GatewayServer) -> None:
    answer = httpx2.get(f"{gateway.url}/resource_server/openapi.json")

    assert answer.status_code == 200
    document = answer.json()
    for path in (CLUSTER_PATH, FEDERATED_PATH):
        post = document["paths"][path]["post"]
        assert post["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/MessagesRequest"
        }
        assert post["security"] == [{"bearer": []}, {"apiKey": []}]
        assert "text/event-stream" in post["responses"]["200"]["content"]
        for status in ("400", "401", "403", "404", "413", "502", "503", "504"):
            assert post["responses"][status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/AnthropicError"
            }
    headers = ["x-project", "x-priority", "x-session-id"]
    assert [p["name"] for p in document["paths"][CLUSTER_PATH]["post"]["parameters"]] == [
        "cluster",
        "framework",
        *headers,
    ]
    federated = document["paths"][FEDERATED_PATH]["post"]
    assert [p["name"] for p in federated["parameters"]] == headers
    assert "anthropic-ratelimit-tokens-remaining" in federated["responses"]["200"]["headers"]
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The same token, as the Anthropic client sends it.",
    }
    schema = document["components"]["schemas"]["MessagesRequest"]
    assert schema == MESSAGES.json_schema(FORWARDED_NOTE)  # generated from the rule table
    assert schema["required"] == ["model", "max_tokens", "messages"]
    assert schema["properties"]["max_tokens"] == {
        "type": "integer",
        "description": "Most tokens to generate.",
        "minimum": 1,
    }
    assert schema["properties"]["messages"]["minItems"] == 1
    assert schema["properties"]["messages"]["items"]["required"] == ["role", "content"]
    error = document["components"]["schemas"]["AnthropicError"]
    assert error["required"] == ["type", "error"]
    assert error["properties"]["error"]["required"] == ["type", "message"]
    # The OpenAI routes keep their own error shape; x-api-key works there too.
    chat = document["paths"]["/resource_server/v1/chat/completions"]["post"]
    assert chat["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert chat["security"] == [{"bearer": []}, {"apiKey": []}]
    count = document["paths"]["/resource_server/v1/messages/count_tokens"]["post"]
    assert count["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CountTokensRequest"
    }
    assert "text/event-stream" not in count["responses"]["200"]["content"]


@pytest.mark.e2e
def test_docs_page_shows_the_messages_routes(gateway: GatewayServer) -> None:
    answer = httpx2.get(f"{gateway.url}/resource_server/docs")

    assert answer.status_code == 200
    page = answer.text
    assert CLUSTER_PATH in page and FEDERATED_PATH in page
    assert "Request body: MessagesRequest" in page
    assert "<code>max_tokens</code>" in page and "<code>stop_sequences</code>" in page
    assert "x-api-key" in page


@pytest.mark.e2e
def test_a_refusal_has_the_documented_shape(gateway: GatewayServer) -> None:
    client = anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server/anthro/vllm",
        api_key=gateway.api_key,
        max_retries=0,
    )
    minimum = documented()["properties"]["max_tokens"]["minimum"]

    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="chat-model",
            max_tokens=minimum - 1,
            messages=[{"role": "user", "content": "hi"}],
        )

    assert caught.value.status_code == 400
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "max_tokens: must be an integer >= 1, not 0",
        },
    }


# --- the documented rules and the validator agree ---------------------------------------------


def test_the_example_uses_every_documented_field_and_passes() -> None:
    assert set(FULL) == set(documented()["properties"])
    validate_messages_request(copy.deepcopy(FULL))


@pytest.mark.parametrize("name", list(FULL))
def test_required_means_refused_when_missing(name: str) -> None:
    body = copy.deepcopy(FULL)
    del body[name]

    if name in documented()["required"]:
        error = refusal(body)
        assert (error.param, error.message) == (name, f"{name}: Field required")
    else:
        validate_messages_request(body)


@pytest.mark.parametrize("name", list(FULL))
def test_each_undocumented_type_is_refused(name: str) -> None:
    declared = documented()["properties"][name]["type"]
    allowed = set(declared if isinstance(declared, list) else [declared])
    if "number" in allowed:
        allowed.add("integer")

    for json_type, value in SAMPLES.items():
        if json_type not in allowed:
            error = refusal(with_field(name, value))
            assert error.param == name, (json_type, error.message)
            assert error.message.startswith(f"{name}: ")


@pytest.mark.parametrize(
    "name",
    [name for name in FULL if {"minimum", "maximum"} & set(documented()["properties"][name])],
)
def test_documented_bounds_are_the_validators(name: str) -> None:
    field = documented()["properties"][name]
    step = 1 if field["type"] == "integer" else 0.01

    if "minimum" in field:
        validate_messages_request(with_field(name, field["minimum"]))
        assert refusal(with_field(name, field["minimum"] - step)).param == name
    if "maximum" in field:
        validate_messages_request(with_field(name, field["maximum"]))
        assert refusal(with_field(name, field["maximum"] + step)).param == name


def test_an_integral_number_is_an_integer_as_json_schema_says() -> None:
    assert documented()["properties"]["max_tokens"]["type"] == "integer"
    validate_messages_request(with_field("max_tokens", 16.0))
    assert refusal(with_field("max_tokens", 16.5)).message == (
        "max_tokens: must be an integer >= 1, not 16.5"
    )


def test_blank_model_is_refused_as_its_pattern_says() -> None:
    assert documented()["properties"]["model"]["pattern"] == r"\S"  # a non-blank character
    assert refusal(with_field("model", "  ")).message == "model: must be a non-empty string"


def test_min_items_is_the_validators() -> None:
    assert documented()["properties"]["messages"]["minItems"] == 1
    assert refusal(with_field("messages", [])).message == (
        "messages: at least one message is required"
    )


def test_documented_roles_are_the_validators() -> None:
    roles = documented()["properties"]["messages"]["items"]["properties"]["role"]["enum"]

    for role in roles:
        validate_messages_request(with_field("messages", [{"role": role, "content": "x"}]))
    assert roles == ["user", "assistant", "system"]
    error = refusal(with_field("messages", [{"role": "developer", "content": "x"}]))
    assert error.param == "messages.0.role"


def test_documented_tool_choices_are_the_validators() -> None:
    tool_choice = documented()["properties"]["tool_choice"]
    assert tool_choice["then"] == {"required": ["name"]}  # a named tool needs its name

    for kind in tool_choice["properties"]["type"]["enum"]:
        choice = {"type": kind, "name": "w"} if kind == "tool" else {"type": kind}
        validate_messages_request(with_field("tool_choice", choice))
    assert refusal(with_field("tool_choice", {"type": "tool"})).param == "tool_choice.name"
    assert refusal(with_field("tool_choice", {"type": "some"})).param == "tool_choice.type"


def test_documented_block_fields_are_the_validators() -> None:
    block_schema = documented()["properties"]["messages"]["items"]["properties"]["content"]["items"]
    conditions = {
        rule["if"]["properties"]["type"]["const"]: rule["then"]["required"]
        for rule in block_schema["allOf"]
    }
    assert set(conditions) == set(BLOCKS)

    for kind, required in conditions.items():
        validate_messages_request(with_block(BLOCKS[kind]))
        for key in required:
            block = {k: v for k, v in BLOCKS[kind].items() if k != key}
            assert refusal(with_block(block)).param == f"messages.0.content.0.{key}", kind
    # A block type the schema sets no condition for is left to the model server.
    validate_messages_request(with_block({"type": "document", "anything": 1}))


def test_documented_tool_fields_are_the_validators() -> None:
    tool_schema = documented()["properties"]["tools"]["items"]
    custom = {"name": "w", "input_schema": {"type": "object"}}

    for key in tool_schema["required"] + tool_schema["then"]["required"]:
        tool = {k: v for k, v in custom.items() if k != key}
        assert refusal(with_field("tools", [tool])).param == f"tools.0.{key}"
    # The input_schema condition holds for custom tools only: server tools have none.
    validate_messages_request(with_field("tools", [{"name": "s", "type": "web_search_20250305"}]))
