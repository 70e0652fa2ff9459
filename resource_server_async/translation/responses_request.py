"""An OpenAI Responses request rewritten as an OpenAI chat/completions request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resource_server_async.errors import GatewayError
from resource_server_async.translation.messages_request import untranslatable

# Responses fields a chat server has no use for: accepted, never forwarded. (`store` and
# `previous_response_id` are the gateway's own business, handled before translation.)
_RESPONSES_ONLY = frozenset(
    {
        "background",
        "client_metadata",
        "context_management",
        "conversation",
        "include",
        "max_tool_calls",
        "metadata",
        "previous_response_id",
        "prompt",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "store",
        "stream_options",
        "truncation",
    }
)
# Fields translated one by one below.
_TRANSLATED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "stream",
        "text",
        "tools",
        "tool_choice",
        "reasoning",
        "top_logprobs",
    }
)
# What a chat server may be asked for `reasoning.effort` (vLLM passes it to the chat template).
_EFFORTS = frozenset({"low", "medium", "high"})
# Namespace tools become functions named "<namespace>__<name>" (OpenAI function names allow
# letters, digits, "_" and "-"), and calls of those names are mapped back.
NAMESPACE_SEPARATOR = "__"


@dataclass(slots=True)
class ToolNames:
    """Chat function name -> (namespace, name) for the functions of namespace tools."""

    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)

    def flat(self, namespace: str, name: str) -> str:
        flat = f"{namespace}{NAMESPACE_SEPARATOR}{name}"
        self.namespaced[flat] = (namespace, name)
        return flat

    def split(self, flat: str) -> tuple[str | None, str]:
        """(namespace or None, name) of a chat tool call's function name."""
        found = self.namespaced.get(flat)
        return found if found is not None else (None, flat)


def hosted_tool_refused(path: str, kind: str) -> GatewayError:
    return GatewayError(
        400,
        "hosted_tool_not_supported",
        f"{path}: the hosted tool {kind!r} cannot run here: this model's server runs only "
        "function tools, and its endpoint refuses hosted ones (responses_hosted_tools "
        "'refuse'). Remove the tool from the request.",
        param=path,
    )


# --- input -----------------------------------------------------------------------------------


def _text_part(part: dict[str, Any], path: str) -> str:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return str(part.get("text", ""))
    if kind == "refusal":
        return str(part.get("refusal", ""))
    raise untranslatable(path, f"a {kind!r} content part")


def _content(content: Any, path: str, *, images: bool) -> str | list[dict[str, Any]]:
    """Message content as chat content: a plain string when it is only text (many chat
    templates, llama.cpp's among them, render only strings well), parts for images."""
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content or []):
        where = f"{path}.{index}"
        if images and part.get("type") == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise untranslatable(where, "an image given by file_id")
            image: dict[str, Any] = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            parts.append({"type": "text", "text": _text_part(part, where)})
    if all(part["type"] == "text" for part in parts):
        # Separate parts the way a reader would see them: as paragraphs.
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _output_text(output: Any, path: str) -> str:
    if isinstance(output, str):
        return output
    content = _content(output, path, images=False)
    assert isinstance(content, str)
    return content


class _Conversation:
    """Chat messages built item by item: function calls join the assistant turn before them."""

    def __init__(self, names: ToolNames) -> None:
        self.messages: list[dict[str, Any]] = []
        self.names = names

    def message(self, item: dict[str, Any], path: str) -> None:
        role = item.get("role")
        if role == "developer":
            role = "system"  # chat templates know "system"; few know "developer"
        if role not in ("user", "assistant", "system"):
            raise untranslatable(f"{path}.role", f"the role {role!r}")
        content = _content(item.get("content"), f"{path}.content", images=role == "user")
        self.messages.append({"role": role, "content": content})

    def function_call(self, item: dict[str, Any]) -> None:
        name = str(item.get("name", ""))
        if item.get("namespace"):
            name = self.names.flat(str(item["namespace"]), name)
        call = {
            "id": item.get("call_id") or item.get("id") or "",
            "type": "function",
            "function": {"name": name, "arguments": item.get("arguments") or "{}"},
        }
        last = self.messages[-1] if self.messages else None
        if last is not None and last["role"] == "assistant" and isinstance(last["content"], str):
            last.setdefault("tool_calls", []).append(call)
            return
        self.messages.append({"role": "assistant", "content": "", "tool_calls": [call]})

    def function_output(self, item: dict[str, Any], path: str) -> None:
        self.messages.append(
            {
                "role": "tool",
                "tool_call_id": item.get("call_id", ""),
                "content": _output_text(item.get("output"), f"{path}.output"),
            }
        )


# Items a chat model cannot be shown and need not be: its own reasoning (chat templates have
# no place for it) and the records of hosted tools, which were dropped.
_DROPPED_ITEMS = frozenset(
    {
        "reasoning",
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "compaction",
    }
)


def input_messages(items: list[dict[str, Any]], names: ToolNames) -> list[dict[str, Any]]:
    """Chat messages for Responses input items (already validated as objects)."""
    conversation = _Conversation(names)
    for index, item in enumerate(items):
        path = f"input.{index}"
        kind = item.get("type", "message")
        if kind == "message":
            conversation.message(item, path)
        elif kind == "function_call":
            conversation.function_call(item)
        elif kind == "function_call_output":
            conversation.function_output(item, path)
        elif kind not in _DROPPED_ITEMS:
            raise untranslatable(path, f"an input item of type {kind!r}")
    return conversation.messages


def _leading_system_merged(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Instructions and the first developer/system items as one system message: many chat
    templates accept a single system message, and only at the start."""
    leading: list[str] = []
    for message in messages:
        if message["role"] != "system" or not isinstance(message["content"], str):
            break
        leading.append(message["content"])
    if len(leading) < 2:
        return messages
    return [{"role": "system", "content": "\n\n".join(leading)}, *messages[len(leading) :]]


# --- tools -----------------------------------------------------------------------------------


def _function(tool: dict[str, Any], name: str) -> dict[str, Any]:
    function: dict[str, Any] = {
        "name": name,
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _tools(tools: list[dict[str, Any]], names: ToolNames, refuse_hosted: bool) -> list[Any]:
    """Function tools as chat functions, namespace tools flattened; hosted tools (web_search
    and the like, which only OpenAI's own service runs) dropped, or refused."""
    translated: list[Any] = []
    for index, tool in enumerate(tools):
        kind = tool.get("type")
        if kind == "function":
            translated.append(_function(tool, str(tool.get("name", ""))))
        elif kind == "namespace":
            for inner_index, inner in enumerate(tool.get("tools") or []):
                if inner.get("type", "function") != "function":
                    if refuse_hosted:
                        raise hosted_tool_refused(
                            f"tools.{index}.tools.{inner_index}", str(inner.get("type"))
                        )
                    continue
                flat = names.flat(str(tool.get("name", "")), str(inner.get("name", "")))
                translated.append(_function(inner, flat))
        elif refuse_hosted:
            raise hosted_tool_refused(f"tools.{index}", str(kind))
    return translated


def _tool_choice(choice: Any, names: ToolNames, offered: list[Any]) -> Any:
    if isinstance(choice, str):
        return choice  # "auto", "none", "required" have the same names
    kind = choice.get("type")
    if kind == "function":
        name = str(choice.get("name", ""))
        if choice.get("namespace"):
            name = names.flat(str(choice["namespace"]), name)
        return {"type": "function", "function": {"name": name}}
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    # A hosted tool was asked for and dropped: the model chooses among what is left.
    return "auto" if offered else None


def _response_format(text: dict[str, Any]) -> dict[str, Any] | None:
    fmt = text.get("format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {
            key: fmt[key] for key in ("name", "schema", "strict", "description") if key in fmt
        }
        return {"type": "json_schema", "json_schema": schema}
    return None  # "text": the default


@dataclass(slots=True)
class ChatRequest:
    """The chat/completions body, and how to map its tool calls back."""

    body: dict[str, Any]
    names: ToolNames


def responses_to_chat(
    body: dict[str, Any],
    model: str,
    *,
    history: list[dict[str, Any]] | None = None,
    refuse_hosted: bool = False,
) -> ChatRequest:
    """The chat/completions body for a validated Responses `body`; `model` is the served name,
    `history` the stored items of `previous_response_id` (input and output, oldest first).

    Fields neither API names (a server's own sampling options such as `top_k`) pass through,
    so that what the model server understands still reaches it.
    """
    names = ToolNames()
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])
    messages = input_messages([*(history or []), *items], names)
    if body.get("instructions"):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    if not messages:
        raise untranslatable("input", "an empty input")

    chat: dict[str, Any] = {
        key: value
        for key, value in body.items()
        if key not in _TRANSLATED and key not in _RESPONSES_ONLY
    }
    chat.update({"model": model, "messages": _leading_system_merged(messages)})
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    tools = _tools(body.get("tools") or [], names, refuse_hosted)
    if tools:
        chat["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None and (tools or choice == "none"):
        translated = _tool_choice(choice, names, tools)
        if translated is not None:
            chat["tool_choice"] = translated
    if not tools:
        chat.pop("parallel_tool_calls", None)
    response_format = _response_format(body.get("text") or {})
    if response_format is not None:
        chat["response_format"] = response_format
    effort = (body.get("reasoning") or {}).get("effort")
    if effort in _EFFORTS:
        chat["reasoning_effort"] = effort
    if body.get("top_logprobs"):
        chat["logprobs"] = True
        chat["top_logprobs"] = body["top_logprobs"]
    if body.get("stream"):
        chat["stream"] = True
        # Without this the stream carries no token counts for the response's usage.
        chat["stream_options"] = {"include_usage": True}
    return ChatRequest(chat, names)
