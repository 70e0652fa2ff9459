"""The request fields Anthropic's Messages API defines: one table checks them and documents them.

Only what the gateway needs to route and translate a request is checked, and nothing that the
models behind the gateway may accept beyond Claude's limits (temperature above 1, top_k -1):
the model server refuses what it cannot do. Refusals are worded as Anthropic words them,
"<field path>: <problem>", and rendered in Anthropic's error shape by the view.
"""

from __future__ import annotations

from string import Template
from typing import Any

from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.schemas import anthropic_content as content
from resource_server_async.schemas.anthropic_content import invalid, type_name
from resource_server_async.schemas.rules import FieldRule, RequestSchema, Wording, describe_types

# The dialect of this family's errors, for the OpenAPI document.
ERROR_DIALECT = Dialect.ANTHROPIC

FORWARDED_NOTE = (
    "Fields not listed here go unchanged to a model server that speaks Messages. For a server "
    "that speaks only chat/completions the gateway translates the request: Anthropic-only fields "
    "(thinking, service_tier, ...) are dropped, a server's own options (e.g. vLLM's min_p) pass "
    "through, and content with no chat counterpart is refused (400 untranslatable_request)."
)

_PLURALS = {
    "string": "strings",
    "integer": "integers",
    "number": "numbers",
    "boolean": "booleans",
    "object": "objects",
    "array": "arrays",
}


class FieldPathWording(Wording):
    """Anthropic's wording: "max_tokens: Field required", "top_p: must be a number between 0
    and 1". A field's `problem` (or, by default, what its type and range say) is the text for
    any value it refuses; `param` is the field, never an item of it."""

    def missing(self, rule: FieldRule) -> GatewayError:
        return invalid(rule.name, "Field required")

    def missing_one_of(self, names: tuple[str, ...]) -> GatewayError:
        return invalid(names[0], f"one of {', '.join(names)} is required")

    def null(self, rule: FieldRule) -> GatewayError:
        return self._refused(rule, None)

    def wrong_type(self, rule: FieldRule, value: Any) -> GatewayError:
        return self._refused(rule, value)

    def out_of_range(self, rule: FieldRule, value: float) -> GatewayError:
        return self._refused(rule, value)

    def too_few(self, rule: FieldRule, value: list[Any]) -> GatewayError:
        if rule.empty_problem is not None:
            return invalid(rule.name, rule.empty_problem)
        return invalid(rule.name, f"must have at least {rule.min_items} items")

    def wrong_item(self, rule: FieldRule, index: int, item: Any) -> GatewayError:
        return self._refused(rule, item)

    @staticmethod
    def _refused(rule: FieldRule, value: Any) -> GatewayError:
        if rule.problem is not None:
            text = Template(rule.problem).safe_substitute(value=repr(value), kind=type_name(value))
            return invalid(rule.name, text)
        expected = []
        for kind in rule.types:
            words = describe_types((kind,))
            if kind == "array" and rule.item_types:
                words += " of " + " or ".join(_PLURALS[t] for t in rule.item_types)
            expected.append(words)
        bounds = rule.bounds(at_least=">= ", at_most="<= ")
        text = f"must be {' or '.join(expected)}" + (f" {bounds}" if bounds else "")
        return invalid(rule.name, text)


# Anthropic's API has no null for "not set": a field is sent or left out.
# The rules of the fields that Messages and count_tokens share: one table, two operations.
_MODEL = FieldRule(
    "model",
    ("string",),
    "Model name as listed by GET /v1/models (matched case-insensitively).",
    required=True,
    deep_check=content.check_model,
    schema_extra=content.MODEL_SCHEMA,
    problem="must be a non-empty string",
)
_MESSAGES = FieldRule(
    "messages",
    ("array",),
    "The conversation so far, oldest first; roles user and assistant (and system turns).",
    required=True,
    min_items=1,
    deep_check=content.check_messages,
    item_schema=content.MESSAGE_SCHEMA,
    problem="must be an array, not $kind",
    empty_problem="at least one message is required",
)
_SYSTEM = FieldRule(
    "system",
    ("string", "array"),
    "System prompt: a string, or text blocks.",
    nullable=False,
    deep_check=content.check_system,
    item_schema=content.TEXT_BLOCK_SCHEMA,
    problem="must be a string or an array of text blocks",
)
_TOOLS = FieldRule(
    "tools",
    ("array",),
    "Tools the model may call.",
    nullable=False,
    deep_check=content.check_tools,
    item_schema=content.TOOL_SCHEMA,
    problem="must be an array, not $kind",
)
_TOOL_CHOICE = FieldRule(
    "tool_choice",
    ("object",),
    'How the model uses tools, e.g. {"type": "auto"}; auto, any, tool (with name), none.',
    nullable=False,
    deep_check=content.check_tool_choice,
    schema_extra=content.TOOL_CHOICE_SCHEMA,
    problem='must be an object such as {"type": "auto"}',
)
# Passed to servers that speak Messages; dropped in translation (chat has no counterpart).
_THINKING = FieldRule(
    "thinking",
    ("object",),
    'Extended thinking, e.g. {"type": "enabled", "budget_tokens": 1024}.',
    nullable=False,
    problem='must be an object such as {"type": "disabled"}',
)

MESSAGES = RequestSchema(
    title="MessagesRequest",
    operation="messages",
    summary="Create a message (Anthropic Messages API).",
    streams=True,
    wording=FieldPathWording(),
    fields=(
        _MODEL,
        FieldRule(
            "max_tokens",
            ("integer",),
            "Most tokens to generate.",
            required=True,
            minimum=1,
            problem="must be an integer >= 1, not $value",
        ),
        _MESSAGES,
        _SYSTEM,
        # No upper bound on temperature: the models behind the gateway are not Claude, and
        # their servers accept OpenAI's range (up to 2).
        FieldRule("temperature", ("number",), "Sampling temperature.", nullable=False, minimum=0),
        FieldRule(
            "top_p", ("number",), "Nucleus sampling mass.", nullable=False, minimum=0, maximum=1
        ),
        # vLLM takes -1 for "no top-k", so only the type is checked.
        FieldRule("top_k", ("integer",), "Sample from the k most likely tokens.", nullable=False),
        FieldRule(
            "stop_sequences",
            ("array",),
            "Sequences where generation stops.",
            nullable=False,
            item_types=("string",),
        ),
        FieldRule("stream", ("boolean",), "Answer as server-sent events.", nullable=False),
        _TOOLS,
        _TOOL_CHOICE,
        _THINKING,
        FieldRule("metadata", ("object",), 'e.g. {"user_id": "..."}.', nullable=False),
    ),
)

COUNT_TOKENS = RequestSchema(
    title="CountTokensRequest",
    operation="messages/count_tokens",
    summary="Count the input tokens of a Messages request (Anthropic's count_tokens): "
    '{"input_tokens": N}.',
    wording=FieldPathWording(),
    fields=(_MODEL, _MESSAGES, _SYSTEM, _TOOLS, _TOOL_CHOICE, _THINKING),
)

REQUESTS: dict[str, RequestSchema] = {
    MESSAGES.operation: MESSAGES,
    COUNT_TOKENS.operation: COUNT_TOKENS,
}


def validate_messages_request(body: dict[str, Any]) -> None:
    """Raise a 400 GatewayError naming the first field of `body` that Messages does not accept."""
    MESSAGES.validate(body)


def validate(operation: str, body: dict[str, Any]) -> None:
    """The check of `operation` (messages or messages/count_tokens), as api.request wants it."""
    REQUESTS[operation].validate(body)
