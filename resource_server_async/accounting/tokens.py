"""Token counts out of an answer's `usage`, in any of the dialects the gateway relays.

OpenAI chat/completions and completions: prompt_tokens, completion_tokens, total_tokens,
prompt_tokens_details.cached_tokens. Embeddings: prompt_tokens, total_tokens. Responses:
input_tokens, output_tokens, total_tokens, input_tokens_details.cached_tokens. Anthropic
Messages: input_tokens (without the cached part), output_tokens, cache_read_input_tokens,
cache_creation_input_tokens; recorded as prompt tokens all three input counts together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from resource_server_async.accounting.outcome import RequestOutcome

# How far after `"usage":` its object may end; usage objects are a few hundred bytes.
_USAGE_SPAN = 4096


@dataclass(slots=True)
class Usage:
    prompt: int | None = None
    completion: int | None = None
    total: int | None = None
    cached: int | None = None

    def merge(self, other: Usage) -> None:
        """Counts from a later event win where it has them (Anthropic streams send input
        tokens in message_start and output tokens in message_delta)."""
        self.prompt = other.prompt if other.prompt is not None else self.prompt
        self.completion = other.completion if other.completion is not None else self.completion
        self.total = other.total if other.total is not None else self.total
        self.cached = other.cached if other.cached is not None else self.cached

    def apply(self, outcome: RequestOutcome, *, estimated: bool = False) -> None:
        outcome.set_usage(
            self.prompt, self.completion, self.total, self.cached, estimated=estimated
        )


def _count(value: Any) -> int | None:
    # bool is an int; a count is never one.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _detail(usage: dict[str, Any], key: str) -> int | None:
    details = usage.get(key)
    return _count(details.get("cached_tokens")) if isinstance(details, dict) else None


def usage_of(usage: Any) -> Usage | None:
    """The counts in one `usage` object of any dialect; None when it holds none."""
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        found = Usage(
            _count(usage.get("prompt_tokens")),
            _count(usage.get("completion_tokens")),
            _count(usage.get("total_tokens")),
            _detail(usage, "prompt_tokens_details"),
        )
    elif "input_tokens" in usage or "output_tokens" in usage:
        cache_read = _count(usage.get("cache_read_input_tokens"))
        cache_write = _count(usage.get("cache_creation_input_tokens"))
        prompt = _count(usage.get("input_tokens"))
        if prompt is not None and (cache_read or cache_write):
            prompt += (cache_read or 0) + (cache_write or 0)
        found = Usage(
            prompt,
            _count(usage.get("output_tokens")),
            _count(usage.get("total_tokens")),
            cache_read if cache_read is not None else _detail(usage, "input_tokens_details"),
        )
    else:
        return None
    if found.total is None and found.prompt is not None and found.completion is not None:
        found.total = found.prompt + found.completion
    return found


def usage_in_answer(answer: dict[str, Any]) -> Usage | None:
    """The usage of a decoded answer or stream event: at the top (chat, embeddings, Messages
    message_delta), in `response` (Responses events) or in `message` (Messages message_start)."""
    usage = answer.get("usage")
    if usage is None:
        for key in ("response", "message"):
            inner = answer.get(key)
            if isinstance(inner, dict) and inner.get("usage") is not None:
                usage = inner["usage"]
                break
    return usage_of(usage)


def usage_in_json(body: bytes) -> Usage | None:
    """The usage of a JSON answer without decoding all of it (embeddings can be megabytes):
    the last `"usage":{...}` is cut out and decoded; anything unusual decodes the whole body."""
    at = body.rfind(b'"usage"')
    if at < 0:
        return None
    start = body.find(b"{", at + 7, at + 7 + 16)
    if start < 0 or body[at + 7 : start].strip() != b":":
        return _whole(body)
    end = _object_end(body, start)
    if end < 0:
        return _whole(body)
    try:
        return usage_of(orjson.loads(body[start:end]))
    except orjson.JSONDecodeError:
        return _whole(body)


def _object_end(body: bytes, start: int) -> int:
    """The index past the `}` closing the object at `start`, or -1. Brace to brace with
    `find` (usage objects hold no strings with braces; if one did, the slice fails to decode
    and the caller decodes the whole body)."""
    limit = min(len(body), start + _USAGE_SPAN)
    depth, at = 1, start + 1
    while depth:
        close = body.find(b"}", at, limit)
        if close < 0:
            return -1
        opened = body.count(b"{", at, close)
        depth += opened - 1
        at = close + 1
    return at


def _whole(body: bytes) -> Usage | None:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return usage_in_answer(answer) if isinstance(answer, dict) else None


def note_usage(outcome: RequestOutcome | None, usage: Any, *, estimated: bool = False) -> None:
    """The hook for translated answers and streams: record a `usage` object (any dialect)."""
    if outcome is None:
        return
    found = usage_of(usage)
    if found is not None:
        found.apply(outcome, estimated=estimated)
