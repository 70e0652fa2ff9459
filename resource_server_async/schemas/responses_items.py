"""Deep checks of a Responses request's `input` items, `tools`, `tool_choice` and `text`.

Only the shapes the translation to chat/completions reads are checked, each with the path of
the offending value; item and tool types the gateway does not know are left to the model server
(passed through) or refused by the translation with its own clear 400.
"""

from __future__ import annotations

from typing import Any

from resource_server_async.schemas.rules import invalid, json_type_name, wrong_type

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
TEXT_FORMATS = ("text", "json_object", "json_schema")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(
            where,
            f"Invalid '{where}': expected an object, got {json_type_name(value)}.",
            "invalid_type",
        )
    return value


def _string(item: dict[str, Any], key: str, where: str, *, required: bool = True) -> None:
    value = item.get(key)
    if value is None:
        if required:
            raise invalid(
                f"{where}.{key}",
                f"Missing required parameter: '{where}.{key}'.",
                "missing_required_parameter",
            )
        return
    if not isinstance(value, str):
        raise wrong_type(f"{where}.{key}", "a string", value)


def _content(content: Any, where: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise wrong_type(where, "a string or an array of content parts", content)
    for index, part in enumerate(content):
        _string(_object(part, f"{where}[{index}]"), "type", f"{where}[{index}]")


def _message(item: dict[str, Any], where: str) -> None:
    _string(item, "role", where)
    if item["role"] not in MESSAGE_ROLES:
        raise invalid(
            f"{where}.role",
            f"Invalid value: '{item['role']}'. Supported values are: "
            + ", ".join(f"'{role}'" for role in MESSAGE_ROLES)
            + ".",
        )
    if "content" not in item:
        raise invalid(
            f"{where}.content",
            f"Missing required parameter: '{where}.content'.",
            "missing_required_parameter",
        )
    _content(item["content"], f"{where}.content")


def check_input(value: Any, param: str) -> None:
    """`input` as an array of items (a string needs no check)."""
    if not isinstance(value, list):
        return
    for index, raw in enumerate(value):
        where = f"{param}[{index}]"
        item = _object(raw, where)
        _string(item, "type", where, required=False)
        kind = item.get("type", "message")
        if kind == "message":
            _message(item, where)
        elif kind == "function_call":
            for key in ("call_id", "name", "arguments"):
                _string(item, key, where)
        elif kind == "function_call_output":
            _string(item, "call_id", where)
            if not isinstance(item.get("output"), str | list):
                raise wrong_type(f"{where}.output", "a string or an array", item.get("output"))


def check_tools(value: list[Any], param: str) -> None:
    for index, raw in enumerate(value):
        where = f"{param}[{index}]"
        tool = _object(raw, where)
        _string(tool, "type", where)
        if tool["type"] == "function":
            _string(tool, "name", where)
        elif tool["type"] == "namespace":
            _string(tool, "name", where)
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise wrong_type(f"{where}.tools", "an array", inner)
            for inner_index, function in enumerate(inner):
                inner_where = f"{where}.tools[{inner_index}]"
                _string(_object(function, inner_where), "name", inner_where)


def check_tool_choice(value: Any, param: str) -> None:
    if isinstance(value, dict):
        _string(value, "type", param)
        if value["type"] == "function":
            _string(value, "name", param)


def check_text(value: dict[str, Any], param: str) -> None:
    fmt = value.get("format")
    if fmt is None:
        return
    where = f"{param}.format"
    _string(_object(fmt, where), "type", where)
    if fmt["type"] not in TEXT_FORMATS:
        raise invalid(
            f"{where}.type",
            f"Invalid value: '{fmt['type']}'. Supported values are: 'text', 'json_object' and "
            "'json_schema'.",
        )
    if fmt["type"] == "json_schema" and not isinstance(fmt.get("schema"), dict):
        raise wrong_type(f"{where}.schema", "an object", fmt.get("schema"))
