"""An Anthropic Messages request rewritten as an OpenAI chat/completions request."""

from __future__ import annotations

from typing import Any

import orjson

from resource_server_async.errors import GatewayError

# Messages fields that chat/completions has no counterpart for: dropped, never forwarded.
_ANTHROPIC_ONLY = frozenset(
    {
        "metadata",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "cache_control",
        "betas",
        "diagnostics",
        "inference_geo",
        "output_config",
        "speed",
        "user_profile_id",
        "workspace_id",
    }
)
# Fields translated one by one below.
_TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "tools",
        "tool_choice",
    }
)


def untranslatable(path: str, what: str) -> GatewayError:
    return GatewayError(
        400,
        "untranslatable_request",
        f"{path}: {what} cannot be sent to this model, whose server speaks only OpenAI "
        "chat/completions.",
        param=path,
    )


def _text_of(blocks: list[dict[str, Any]], path: str) -> str:
    parts: list[str] = []
    for index, block in enumerate(blocks):
        if block.get("type") != "text":
            raise untranslatable(f"{path}.{index}", f"a {block.get('type')!r} block")
        parts.append(block["text"])
    # Separate blocks the way a reader would see them: as paragraphs.
    return "\n\n".join(parts)


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block["source"]
    if source["type"] == "url":
        url = source["url"]
    else:
        url = f"data:{source['media_type']};base64,{source['data']}"
    return {"type": "image_url", "image_url": {"url": url}}


def _user_content(blocks: list[dict[str, Any]], path: str) -> str | list[dict[str, Any]]:
    """Text and image blocks as chat content: a plain string when there is only text.

    Many chat templates (llama.cpp's among them) render only string content well, so text-only
    turns stay strings; images need the list form.
    """
    if all(block.get("type") == "text" for block in blocks):
        return _text_of(blocks, path)
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image_part(block))
        else:
            raise untranslatable(f"{path}.{index}", f"a {kind!r} block")
    return parts


def _tool_message(block: dict[str, Any], path: str) -> dict[str, Any]:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = _text_of(content, f"{path}.content")
    if block.get("is_error"):
        # Chat tool messages have no error flag; say it in the text the model reads.
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _user_messages(content: str | list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    # Tool results answer the previous assistant turn's tool calls, and chat/completions wants
    # them as `tool` messages right after it, before any new user text.
    tools = [
        _tool_message(block, f"{path}.{index}")
        for index, block in enumerate(content)
        if block.get("type") == "tool_result"
    ]
    rest = [block for block in content if block.get("type") != "tool_result"]
    messages = tools
    if rest or not tools:
        messages.append({"role": "user", "content": _user_content(rest, path)})
    return messages


def _assistant_message(content: str | list[dict[str, Any]], path: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {
                        "name": block["name"],
                        "arguments": orjson.dumps(block["input"]).decode(),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            # The model's own earlier reasoning; chat templates have no place for it.
            continue
        else:
            raise untranslatable(f"{path}.{index}", f"a {kind!r} block")
    message: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _system_message(system: str | list[dict[str, Any]], path: str) -> dict[str, Any]:
    text = system if isinstance(system, str) else _text_of(system, path)
    return {"role": "system", "content": text}


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translated = []
    for index, tool in enumerate(tools):
        if tool.get("type", "custom") != "custom":
            raise untranslatable(f"tools.{index}", f"the server tool {tool.get('type')!r}")
        function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        translated.append({"type": "function", "function": function})
    return translated


def _tool_choice(choice: dict[str, Any]) -> str | dict[str, Any]:
    kind = choice["type"]
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice["name"]}}
    return str(kind)  # "auto" and "none" have the same names


def chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The chat messages for a validated Messages (or count_tokens) `body`: its `system`, then
    its turns; `system` turns among them stay where they are, as chat `system` messages."""
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append(_system_message(body["system"], "system"))
    for index, message in enumerate(body["messages"]):
        path = f"messages.{index}.content"
        role = message["role"]
        if role == "user":
            messages.extend(_user_messages(message["content"], path))
        elif role == "system":
            messages.append(_system_message(message["content"], path))
        else:
            messages.append(_assistant_message(message["content"], path))
    return messages


def chat_tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The body's tools as chat function tools, or None without any."""
    return _tools(body["tools"]) if body.get("tools") else None


def messages_to_chat(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The chat/completions body for a validated Messages `body`; `model` is the served name.

    Fields neither API names (a server's own sampling options such as `min_p`) pass through,
    so that what the model server understands still reaches it.
    """
    messages = chat_messages(body)

    chat: dict[str, Any] = {
        key: value
        for key, value in body.items()
        if key not in _TRANSLATED and key not in _ANTHROPIC_ONLY
    }
    chat.update({"model": model, "messages": messages, "max_tokens": body["max_tokens"]})
    for key in ("temperature", "top_p", "top_k"):
        if key in body:
            chat[key] = body[key]
    if body.get("stop_sequences"):
        chat["stop"] = list(body["stop_sequences"])
    tools = chat_tools(body)
    if tools:
        chat["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None:
        chat["tool_choice"] = _tool_choice(choice)
        if choice.get("disable_parallel_tool_use"):
            chat["parallel_tool_calls"] = False
    if body.get("stream"):
        chat["stream"] = True
        # Without this the OpenAI stream carries no token counts for message_delta.usage.
        chat["stream_options"] = {"include_usage": True}
    return chat
