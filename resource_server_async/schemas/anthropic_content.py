"""The nested parts of a Messages request (messages, content blocks, system, tools, tool_choice):
their checks, each next to the JSON Schema that documents it.

These are the `deep_check`s of the rule table in schemas/anthropic.py: the table checks a field's
type and range, these look inside it. Errors are worded as Anthropic words them,
"<field path>: <problem>" (e.g. "messages.0.content.0.text: Field required and must be a string").
"""

from __future__ import annotations

from typing import Any

from resource_server_async.errors import GatewayError

# `system` turns inside `messages`: Anthropic's mid-conversation-system beta (Claude Code 2.1
# sends one in its first request); their content is text only, like the top-level `system`.
ROLES = ("user", "assistant", "system")
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")


def invalid(path: str, problem: str) -> GatewayError:
    return GatewayError(400, "invalid_request", f"{path}: {problem}", param=path)


def type_name(value: Any) -> str:
    """JSON's name of a value's type, as Anthropic's messages use it ("not string")."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names = {dict: "object", list: "array", str: "string", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _when(kind: str, then: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema: `then` applies to an object whose `type` is `kind`."""
    return {
        "if": {"required": ["type"], "properties": {"type": {"const": kind}}},
        "then": then,
    }


_NON_EMPTY_STRING = {"type": "string", "minLength": 1}


# --- model ------------------------------------------------------------------------------------


def check_model(value: str, path: str) -> None:
    if not value.strip():
        raise invalid(path, "must be a non-empty string")


MODEL_SCHEMA = {"pattern": r"\S"}


# --- content blocks ---------------------------------------------------------------------------


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

TEXT_BLOCK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}

CONTENT_BLOCK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {
            "type": "string",
            "minLength": 1,
            "description": "text, image, tool_use and tool_result are checked; other types "
            "(document, thinking, ...) go to the model server unchecked.",
        }
    },
    "additionalProperties": True,
    "allOf": [
        _when("text", {"required": ["text"], "properties": {"text": {"type": "string"}}}),
        _when(
            "image",
            {
                "required": ["source"],
                "properties": {
                    "source": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"enum": ["base64", "url"]}},
                        "allOf": [
                            _when(
                                "base64",
                                {
                                    "required": ["media_type", "data"],
                                    "properties": {
                                        "media_type": _NON_EMPTY_STRING,
                                        "data": _NON_EMPTY_STRING,
                                    },
                                },
                            ),
                            _when(
                                "url",
                                {"required": ["url"], "properties": {"url": _NON_EMPTY_STRING}},
                            ),
                        ],
                    }
                },
            },
        ),
        _when(
            "tool_use",
            {
                "required": ["id", "name", "input"],
                "properties": {
                    "id": _NON_EMPTY_STRING,
                    "name": _NON_EMPTY_STRING,
                    "input": {"type": "object"},
                },
            },
        ),
        _when(
            "tool_result",
            {
                "required": ["tool_use_id"],
                "properties": {
                    "tool_use_id": _NON_EMPTY_STRING,
                    "is_error": {"type": "boolean"},
                    "content": {
                        "type": ["string", "array", "null"],
                        "items": {"type": "object", "required": ["type"]},
                        "description": "A string, or content blocks (checked as these are).",
                    },
                },
            },
        ),
    ],
}


def _check_block(block: Any, path: str) -> None:
    if not isinstance(block, dict):
        raise invalid(path, f"a content block must be an object, not {type_name(block)}")
    kind = block.get("type")
    if not isinstance(kind, str) or not kind:
        raise invalid(f"{path}.type", "Field required")
    check = _BLOCK_CHECKS.get(kind)
    # Other block types (document, thinking, ...) are checked by the model server that
    # speaks Messages, or refused by the translator for servers that do not.
    if check is not None:
        check(block, path)


# --- messages ---------------------------------------------------------------------------------


def _check_content(content: Any, path: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(
            path, f"must be a string or an array of content blocks, not {type_name(content)}"
        )
    for index, block in enumerate(content):
        _check_block(block, f"{path}.{index}")


def check_messages(messages: list[Any], path: str) -> None:
    for index, message in enumerate(messages):
        where = f"{path}.{index}"
        if not isinstance(message, dict):
            raise invalid(where, f"a message must be an object, not {type_name(message)}")
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"{where}.role", f"must be 'user', 'assistant' or 'system', not {role!r}")
        if "content" not in message:
            raise invalid(f"{where}.content", "Field required")
        if role == "system":
            _check_system_content(message["content"], f"{where}.content")
        else:
            _check_content(message["content"], f"{where}.content")


MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": list(ROLES)},
        "content": {"type": ["string", "array"], "items": CONTENT_BLOCK_SCHEMA},
    },
    "additionalProperties": True,
}


# --- system -----------------------------------------------------------------------------------


def check_system(system: str | list[Any], path: str) -> None:
    if isinstance(system, str):
        return
    _check_system_blocks(system, path)


def _check_system_content(content: Any, path: str) -> None:
    """A system turn's content: a string or text blocks, as the top-level `system`."""
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(
            path, f"must be a string or an array of text blocks, not {type_name(content)}"
        )
    _check_system_blocks(content, path)


def _check_system_blocks(system: list[Any], path: str) -> None:
    for index, block in enumerate(system):
        where = f"{path}.{index}"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise invalid(where, "system blocks must be objects of type 'text'")
        _check_text_block(block, where)


# --- tools ------------------------------------------------------------------------------------


def check_tools(tools: list[Any], path: str) -> None:
    for index, tool in enumerate(tools):
        where = f"{path}.{index}"
        if not isinstance(tool, dict):
            raise invalid(where, "a tool must be an object")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise invalid(f"{where}.name", "Field required and must be a non-empty string")
        # Server tools (web search, ...) carry a versioned `type` and no input_schema.
        if tool.get("type", "custom") == "custom" and not isinstance(
            tool.get("input_schema"), dict
        ):
            raise invalid(f"{where}.input_schema", "Field required and must be an object")
        if "description" in tool and not isinstance(tool["description"], str):
            raise invalid(f"{where}.description", "must be a string")


TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _NON_EMPTY_STRING,
        "description": {"type": "string"},
        "input_schema": {"type": "object", "description": "JSON Schema of the tool's input."},
        "type": {
            "type": "string",
            "description": "custom (the default), or a server tool's versioned type.",
        },
    },
    "additionalProperties": True,
    # A missing `type` means custom, and `if` holds for it too: custom tools need input_schema.
    "if": {"properties": {"type": {"const": "custom"}}},
    "then": {"required": ["input_schema"]},
}


# --- tool_choice ------------------------------------------------------------------------------


def check_tool_choice(choice: dict[str, Any], path: str) -> None:
    kind = choice.get("type")
    if kind not in TOOL_CHOICE_TYPES:
        raise invalid(f"{path}.type", f"must be one of {', '.join(TOOL_CHOICE_TYPES)}")
    if kind == "tool" and (not isinstance(choice.get("name"), str) or not choice["name"]):
        raise invalid(f"{path}.name", "Field required when tool_choice.type is 'tool'")
    if "disable_parallel_tool_use" in choice and not isinstance(
        choice["disable_parallel_tool_use"], bool
    ):
        raise invalid(f"{path}.disable_parallel_tool_use", "must be a boolean")


TOOL_CHOICE_SCHEMA: dict[str, Any] = {
    "required": ["type"],
    "properties": {
        "type": {"enum": list(TOOL_CHOICE_TYPES)},
        "name": _NON_EMPTY_STRING,
        "disable_parallel_tool_use": {"type": "boolean"},
    },
    **_when("tool", {"required": ["name"]}),
}
