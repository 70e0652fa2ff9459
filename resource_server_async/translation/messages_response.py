"""An OpenAI chat/completions answer rewritten as an Anthropic Messages answer."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from resource_server_async.errors import GatewayError

# OpenAI finish_reason -> Anthropic stop_reason.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def as_object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: upstream answers are not trusted."""
    return value if isinstance(value, dict) else {}


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def new_tool_use_id() -> str:
    return "toolu_" + secrets.token_hex(12)


def stop_reason(
    finish_reason: str | None,
    matched: Any,
    stop_sequences: list[str],
    has_tool_calls: bool = False,
) -> tuple[str | None, str | None]:
    """(stop_reason, stop_sequence) for an OpenAI choice's finish.

    `matched` is vLLM's `choice.stop_reason`: the stop string that ended the text, a token
    id, or None. Servers that do not report it make a stop-sequence hit look like end_turn.
    """
    if finish_reason is None:
        return None, None
    if finish_reason == "stop":
        if has_tool_calls:
            # Some servers (llama.cpp) finish a tool call with "stop".
            return "tool_use", None
        if isinstance(matched, str) and matched in stop_sequences:
            return "stop_sequence", matched
    return _STOP_REASONS.get(finish_reason, "end_turn"), None


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's JSON arguments as the object Messages carries in `input`."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    # Small models write broken JSON; keep what they wrote rather than lose it.
    return {"_unparsed_arguments": arguments}


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """An upstream's usage counts; None where it did not report one."""

    prompt: int | None = None
    completion: int | None = None


def token_counts(chat_usage: Any) -> TokenCounts:
    """The counts of an OpenAI `usage` object. Absent or null counts are unknown (vLLM may send
    a null completion_tokens); anything but a non-negative integer is a malformed answer (502):
    guessing a number from a string or a float would put wrong counts in the client's usage."""
    if chat_usage is None:
        return TokenCounts()
    if not isinstance(chat_usage, dict):
        raise malformed(f"its usage is {_json_kind(chat_usage)}, not an object")
    return TokenCounts(_count(chat_usage, "prompt_tokens"), _count(chat_usage, "completion_tokens"))


def _count(usage: dict[str, Any], name: str) -> int | None:
    value = usage.get(name)
    if value is None:
        return None
    # bool is an int in Python, not in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise malformed(f"usage.{name} is {_json_kind(value)}, not a token count")
    if value < 0:
        raise malformed(f"usage.{name} is negative, not a token count")
    return value


def _json_kind(value: Any) -> str:
    for types, kind in _JSON_KINDS:
        if isinstance(value, types):
            return kind
    return type(value).__name__


_JSON_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"),
    (str, "a string"),
    ((int, float), "a number"),
    (list, "an array"),
    (dict, "an object"),
)


def usage_of(chat_usage: Any) -> dict[str, int]:
    counts = token_counts(chat_usage)
    return {"input_tokens": counts.prompt or 0, "output_tokens": counts.completion or 0}


def malformed(reason: str) -> GatewayError:
    return GatewayError(
        502, "upstream_malformed_answer", f"The model server's answer is malformed: {reason}."
    )


def first_choice(chat: Any) -> dict[str, Any]:
    """The first choice of a chat/completions answer; 502 for an answer without one."""
    if not isinstance(chat, dict):
        raise malformed("not a JSON object")
    choices = chat.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise malformed("no choices")
    return choices[0]


def chat_to_message(chat: Any, model: str, stop_sequences: list[str]) -> dict[str, Any]:
    """The Messages answer for a chat/completions answer; `model` is the name the client used."""
    choice = first_choice(chat)
    message = as_object(choice.get("message"))
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") or []
    for call in calls:
        function = as_object(as_object(call).get("function"))
        content.append(
            {
                "type": "tool_use",
                "id": as_object(call).get("id") or new_tool_use_id(),
                "name": function.get("name") or "",
                "input": tool_input(function.get("arguments")),
            }
        )
    reason, sequence = stop_reason(
        choice.get("finish_reason"), choice.get("stop_reason"), stop_sequences, bool(calls)
    )
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason or "end_turn",
        "stop_sequence": sequence,
        "usage": usage_of(chat.get("usage")),
    }
