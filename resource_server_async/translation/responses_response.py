"""An OpenAI chat/completions answer rewritten as an OpenAI Responses `response` object."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from resource_server_async.translation.messages_response import (
    as_object,
    first_choice,
    token_counts,
)
from resource_server_async.translation.responses_request import ToolNames

# finish_reason -> the reason of an incomplete response; anything else completes it.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    """An id in OpenAI's style: "resp_…", "msg_…", "fc_…", "call_…"."""
    return f"{prefix}_{secrets.token_hex(12)}"


def incomplete_reason(finish_reason: Any) -> str | None:
    return _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None


def usage_of(chat_usage: Any, output_estimate: int = 0) -> dict[str, Any]:
    """Responses usage for a chat `usage` object; `output_estimate` stands in for a count the
    server did not send."""
    counts = token_counts(chat_usage)
    usage = as_object(chat_usage)
    prompt = counts.prompt or 0
    completion = counts.completion if counts.completion is not None else output_estimate
    cached = as_object(usage.get("prompt_tokens_details")).get("cached_tokens")
    reasoning = as_object(usage.get("completion_tokens_details")).get("reasoning_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached if isinstance(cached, int) else 0},
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": reasoning if isinstance(reasoning, int) else 0
        },
        "total_tokens": prompt + completion,
    }


def response_object(
    request: dict[str, Any],
    *,
    response_id: str,
    created_at: int,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `response` with the request's parameters echoed, as OpenAI answers; `model` is the
    name the client used."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": model,
        "output": output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": {
            "effort": (request.get("reasoning") or {}).get("effort"),
            "summary": (request.get("reasoning") or {}).get("summary"),
        },
        "service_tier": "default",
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_logprobs": request.get("top_logprobs", 0),
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation", "disabled"),
        "usage": usage,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [output_text_part(text)],
    }


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(
    item_id: str, call_id: str, flat_name: str, arguments: str, status: str, names: ToolNames
) -> dict[str, Any]:
    namespace, name = names.split(flat_name)
    item: dict[str, Any] = {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    # Some servers send the arguments as an object; Responses carries them as JSON text.
    return orjson.dumps(value).decode() if value is not None else "{}"


def chat_to_response(
    chat: Any, request: dict[str, Any], model: str, names: ToolNames
) -> dict[str, Any]:
    """The Responses answer for a chat/completions answer to the translated `request`."""
    choice = first_choice(chat)
    message = as_object(choice.get("message"))
    incomplete = incomplete_reason(choice.get("finish_reason"))
    status = "incomplete" if incomplete else "completed"
    output: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, str) and text:
        output.append(message_item(new_id("msg"), text, status))
    for call in message.get("tool_calls") or []:
        function = as_object(as_object(call).get("function"))
        output.append(
            function_call_item(
                new_id("fc"),
                str(as_object(call).get("id") or new_id("call")),
                str(function.get("name") or ""),
                _arguments(function.get("arguments")),
                "completed",
                names,
            )
        )
    return response_object(
        request,
        response_id=new_id("resp"),
        created_at=int(chat["created"])
        if isinstance(chat.get("created"), int)
        else int(time.time()),
        model=model,
        status=status,
        output=output,
        usage=usage_of(chat.get("usage")),
        incomplete=incomplete,
    )
