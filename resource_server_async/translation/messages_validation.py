"""Checks of an Anthropic Messages request body, answered as 400s that name the field."""

from __future__ import annotations

from typing import Any

from resource_server_async.errors import GatewayError

ROLES = ("user", "assistant")
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")


def invalid(path: str, problem: str) -> GatewayError:
    # Anthropic words these as "<field path>: <problem>", e.g. "max_tokens: Field required".
    return GatewayError(400, "invalid_request", f"{path}: {problem}", param=path)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number" if _is_number(value) else type(value).__name__)


def _require(body: dict[str, Any], key: str) -> Any:
    if key not in body:
        raise invalid(key, "Field required")
    return body[key]


def _check_text_block(block: dict[str, Any], path: str) -> None:
    if not isinstance(block.get("text"), str):
        raise invalid(f"{path}.text", "Field required and must be a string")


def _check_image_block(block: dict[str, Any], path: str) -> None:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{path}.source", "Field required and must be an object")
    kind = source.get("type")
    if kind == "base64":
        for key in ("media_type", "data"):
            if not isinstance(source.get(key), str) or not source[key]:
                raise invalid(f"{path}.source.{key}", "Field required and must be a string")
    elif kind == "url":
        if not isinstance(source.get("url"), str) or not source["url"]:
            raise invalid(f"{path}.source.url", "Field required and must be a string")
    else:
        raise invalid(f"{path}.source.type", "must be 'base64' or 'url'")


def _check_tool_use_block(block: dict[str, Any], path: str) -> None:
    for key in ("id", "name"):
        if not isinstance(block.get(key), str) or not block[key]:
            raise invalid(f"{path}.{key}", "Field required and must be a non-empty string")
    if not isinstance(block.get("input"), dict):
        raise invalid(f"{path}.input", "Field required and must be an object")


def _check_tool_result_block(block: dict[str, Any], path: str) -> None:
    if not isinstance(block.get("tool_use_id"), str) or not block["tool_use_id"]:
        raise invalid(f"{path}.tool_use_id", "Field required and must be a non-empty string")
    if "is_error" in block and not isinstance(block["is_error"], bool):
        raise invalid(f"{path}.is_error", "must be a boolean")
    content = block.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(f"{path}.content", "must be a string or an array of content blocks")
    for index, inner in enumerate(content):
        _check_block(inner, f"{path}.content.{index}")


_BLOCK_CHECKS = {
    "text": _check_text_block,
    "image": _check_image_block,
    "tool_use": _check_tool_use_block,
    "tool_result": _check_tool_result_block,
}


def _check_block(block: Any, path: str) -> None:
    if not isinstance(block, dict):
        raise invalid(path, f"a content block must be an object, not {_type_name(block)}")
    kind = block.get("type")
    if not isinstance(kind, str) or not kind:
        raise invalid(f"{path}.type", "Field required")
    check = _BLOCK_CHECKS.get(kind)
    # Other block types (document, thinking, ...) are checked by the model server that
    # speaks Messages, or refused by the translator for servers that do not.
    if check is not None:
        check(block, path)


def _check_content(content: Any, path: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(
            path, f"must be a string or an array of content blocks, not {_type_name(content)}"
        )
    for index, block in enumerate(content):
        _check_block(block, f"{path}.{index}")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise invalid("messages", f"must be an array, not {_type_name(messages)}")
    if not messages:
        raise invalid("messages", "at least one message is required")
    for index, message in enumerate(messages):
        path = f"messages.{index}"
        if not isinstance(message, dict):
            raise invalid(path, f"a message must be an object, not {_type_name(message)}")
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"{path}.role", f"must be 'user' or 'assistant', not {role!r}")
        if "content" not in message:
            raise invalid(f"{path}.content", "Field required")
        _check_content(message["content"], f"{path}.content")


def _check_system(system: Any) -> None:
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid("system", "must be a string or an array of text blocks")
    for index, block in enumerate(system):
        path = f"system.{index}"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid(path, "system blocks must be objects of type 'text'")
        _check_text_block(block, path)


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise invalid("tools", f"must be an array, not {_type_name(tools)}")
    for index, tool in enumerate(tools):
        path = f"tools.{index}"
        if not isinstance(tool, dict):
            raise invalid(path, "a tool must be an object")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise invalid(f"{path}.name", "Field required and must be a non-empty string")
        # Server tools (web search, ...) carry a versioned `type` and no input_schema.
        if tool.get("type", "custom") == "custom" and not isinstance(
            tool.get("input_schema"), dict
        ):
            raise invalid(f"{path}.input_schema", "Field required and must be an object")
        if "description" in tool and not isinstance(tool["description"], str):
            raise invalid(f"{path}.description", "must be a string")


def _check_tool_choice(choice: Any) -> None:
    if not isinstance(choice, dict):
        raise invalid("tool_choice", 'must be an object such as {"type": "auto"}')
    kind = choice.get("type")
    if kind not in TOOL_CHOICE_TYPES:
        raise invalid("tool_choice.type", f"must be one of {', '.join(TOOL_CHOICE_TYPES)}")
    if kind == "tool" and (not isinstance(choice.get("name"), str) or not choice["name"]):
        raise invalid("tool_choice.name", "Field required when tool_choice.type is 'tool'")
    if "disable_parallel_tool_use" in choice and not isinstance(
        choice["disable_parallel_tool_use"], bool
    ):
        raise invalid("tool_choice.disable_parallel_tool_use", "must be a boolean")


def _check_sampling(body: dict[str, Any]) -> None:
    # No upper bound on temperature: the models behind the gateway are not Claude, and their
    # servers accept OpenAI's range (up to 2); the server refuses what it cannot do.
    if "temperature" in body and (not _is_number(body["temperature"]) or body["temperature"] < 0):
        raise invalid("temperature", "must be a number >= 0")
    if "top_p" in body and (not _is_number(body["top_p"]) or not 0 <= body["top_p"] <= 1):
        raise invalid("top_p", "must be a number between 0 and 1")
    # vLLM takes -1 for "no top-k", so only the type is checked.
    if "top_k" in body and not _is_int(body["top_k"]):
        raise invalid("top_k", "must be an integer")
    stops = body.get("stop_sequences")
    if "stop_sequences" in body and (
        not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)
    ):
        raise invalid("stop_sequences", "must be an array of strings")


def validate_messages_request(body: dict[str, Any]) -> None:
    """Raise a 400 GatewayError naming the first field of `body` that Messages does not accept."""
    model = _require(body, "model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("model", "must be a non-empty string")
    max_tokens = _require(body, "max_tokens")
    if not _is_int(max_tokens) or max_tokens < 1:
        raise invalid("max_tokens", f"must be an integer >= 1, not {max_tokens!r}")
    _check_messages(_require(body, "messages"))
    if "system" in body:
        _check_system(body["system"])
    _check_sampling(body)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid("stream", "must be a boolean")
    if "tools" in body:
        _check_tools(body["tools"])
    if "tool_choice" in body:
        _check_tool_choice(body["tool_choice"])
    if "metadata" in body and not isinstance(body["metadata"], dict):
        raise invalid("metadata", "must be an object")
