"""A count_tokens request as a model server's tokenizer request, and the count in its answer.

The prompt is the one the translation to chat/completions sends (`messages_request`): the
same system, turns and tools. vLLM renders it with the model's chat template, so its count is
the prompt's; the text tokenizers (llama-cpp-python, llama.cpp) get the text of each turn
without the template's markup, so theirs is a few tokens per turn short of it.
"""

from __future__ import annotations

from typing import Any

import orjson

from resource_server_async.endpoints.tokenizer import TokenizerConfig


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Images have no text to count; their tokens are the vision encoder's business.
        return "\n\n".join(part["text"] for part in content if part.get("type") == "text")
    return ""


def prompt_text(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    """The turns as plain text, one paragraph each ("role: text"), tool calls and tools as
    the JSON the server would be shown."""
    parts: list[str] = []
    if tools:
        parts.append("tools: " + orjson.dumps(tools).decode())
    for message in messages:
        text = _content_text(message.get("content"))
        calls = message.get("tool_calls")
        if calls:
            text = "\n".join([text, *(orjson.dumps(call["function"]).decode() for call in calls)])
        parts.append(f"{message['role']}: {text.strip()}")
    return "\n\n".join(parts)


def tokenizer_body(
    tokenizer: TokenizerConfig,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """The JSON body of the tokenizer route for this prompt."""
    if tokenizer.kind == "vllm":
        # add_generation_prompt: the prompt as a completion would see it, ending where the
        # assistant's answer begins, which is what prompt_tokens counts.
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "add_generation_prompt": True,
        }
        if tools:
            body["tools"] = tools
        return body
    text = prompt_text(messages, tools)
    if tokenizer.kind == "llama-cpp-python":
        return {"model": model, "input": text}
    return {"content": text, "add_special": True}  # llama.cpp's server


def token_count(answer: Any) -> int | None:
    """`count` (vLLM, llama-cpp-python's /count route) or the length of `tokens`; None when
    the answer has neither."""
    if not isinstance(answer, dict):
        return None
    count = answer.get("count")
    if type(count) is int and count >= 0:
        return count
    tokens = answer.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None
