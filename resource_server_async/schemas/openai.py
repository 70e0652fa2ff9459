"""The request fields OpenAI defines for chat/completions, completions, embeddings, responses.

Only types and ranges are checked; everything else (vLLM's `top_k`, `min_p`,
`repetition_penalty`, `guided_*`, `chat_template_kwargs`, whatever a client puts in
`extra_body`) goes to the model server untouched, so a request vLLM accepts is never refused here.
Ranges follow OpenAI's API reference where vLLM accepts at least as much.
"""

from __future__ import annotations

from typing import Any

from resource_server_async.errors import GatewayError
from resource_server_async.schemas import responses_items
from resource_server_async.schemas.rules import (
    FieldRule,
    RequestSchema,
    invalid,
    json_type_name,
    wrong_type,
)

FORWARDED_NOTE = (
    "Fields not listed here (for example vLLM's top_k, min_p, repetition_penalty, guided_json, "
    "chat_template_kwargs) are forwarded to the model server unchanged."
)


def _model_name(value: Any, param: str) -> None:
    if not value.strip():
        raise invalid(param, "'model' must name a model, not be empty.")


def _messages(value: list[Any], param: str) -> None:
    for index, message in enumerate(value):
        where = f"{param}[{index}]"
        if not isinstance(message, dict):
            raise invalid(
                where,
                f"Invalid '{where}': expected an object with a 'role', "
                f"got {json_type_name(message)}.",
                "invalid_type",
            )
        role = message.get("role")
        if role is None:
            raise invalid(
                f"{where}.role",
                f"Missing required parameter: '{where}.role'.",
                "missing_required_parameter",
            )
        if not isinstance(role, str):
            raise wrong_type(f"{where}.role", "a string", role)
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise wrong_type(f"{where}.content", "a string or an array of content parts", content)


_MESSAGE_SCHEMA = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "description": "system, user, assistant, tool, developer..."},
        "content": {"type": ["string", "array", "null"]},
    },
    "additionalProperties": True,
}

_MODEL = FieldRule(
    "model",
    ("string",),
    "Model name as listed by GET /v1/models (matched case-insensitively).",
    required=True,
    deep_check=_model_name,
    schema_extra={"pattern": r"\S"},  # what _model_name checks: not blank
)
_STREAM = FieldRule("stream", ("boolean",), "Answer as server-sent events.")
_STREAM_OPTIONS = FieldRule("stream_options", ("object",), 'e.g. {"include_usage": true}.')
_TEMPERATURE = FieldRule("temperature", ("number",), "Sampling temperature.", minimum=0, maximum=2)
_TOP_P = FieldRule("top_p", ("number",), "Nucleus sampling mass.", minimum=0, maximum=1)
_N = FieldRule("n", ("integer",), "Number of choices to generate.", minimum=1)
_STOP = FieldRule(
    "stop", ("string", "array"), "Sequence(s) where generation stops.", item_types=("string",)
)
_PRESENCE = FieldRule("presence_penalty", ("number",), minimum=-2, maximum=2)
_FREQUENCY = FieldRule("frequency_penalty", ("number",), minimum=-2, maximum=2)
_LOGIT_BIAS = FieldRule("logit_bias", ("object",), "Token id -> bias (-100..100).")
_SEED = FieldRule("seed", ("integer",), "Seed for reproducible sampling.")
_USER = FieldRule("user", ("string",), "End-user identifier.")
_TOOLS = FieldRule("tools", ("array",), "Tools the model may call.", item_types=("object",))
_TOOL_CHOICE = FieldRule("tool_choice", ("string", "object"), "none, auto, required, or a tool.")
_PARALLEL_TOOLS = FieldRule("parallel_tool_calls", ("boolean",))
_METADATA = FieldRule("metadata", ("object",))
_STORE = FieldRule("store", ("boolean",))

CHAT_COMPLETIONS = RequestSchema(
    title="ChatCompletionRequest",
    operation="chat/completions",
    summary="Create a chat completion (OpenAI Chat Completions API).",
    streams=True,
    fields=(
        _MODEL,
        FieldRule(
            "messages",
            ("array",),
            "The conversation so far, oldest first.",
            required=True,
            min_items=1,
            deep_check=_messages,
            item_schema=_MESSAGE_SCHEMA,
        ),
        _STREAM,
        _STREAM_OPTIONS,
        _TEMPERATURE,
        _TOP_P,
        _N,
        FieldRule("max_tokens", ("integer",), "Most tokens to generate (legacy).", minimum=1),
        FieldRule("max_completion_tokens", ("integer",), "Most tokens to generate.", minimum=1),
        _STOP,
        _PRESENCE,
        _FREQUENCY,
        _LOGIT_BIAS,
        FieldRule("logprobs", ("boolean",), "Return log probabilities of output tokens."),
        FieldRule("top_logprobs", ("integer",), "Most likely tokens per position.", minimum=0),
        _SEED,
        _USER,
        _TOOLS,
        _TOOL_CHOICE,
        _PARALLEL_TOOLS,
        FieldRule("response_format", ("object",), 'e.g. {"type": "json_object"}.'),
        FieldRule("functions", ("array",), "Deprecated form of tools.", item_types=("object",)),
        FieldRule("function_call", ("string", "object"), "Deprecated form of tool_choice."),
        _METADATA,
        _STORE,
        FieldRule("modalities", ("array",), item_types=("string",)),
        FieldRule("reasoning_effort", ("string",)),
        FieldRule("service_tier", ("string",)),
        FieldRule("prediction", ("object",)),
        FieldRule("audio", ("object",)),
    ),
)

COMPLETIONS = RequestSchema(
    title="CompletionRequest",
    operation="completions",
    summary="Create a text completion (OpenAI legacy Completions API).",
    streams=True,
    fields=(
        _MODEL,
        FieldRule(
            "prompt",
            ("string", "array"),
            "Text, a list of texts, or token ids (a list, or a list of lists).",
        ),
        FieldRule("suffix", ("string",)),
        _STREAM,
        _STREAM_OPTIONS,
        # 0 is allowed: with echo it scores the prompt without generating.
        FieldRule("max_tokens", ("integer",), "Most tokens to generate.", minimum=0),
        _TEMPERATURE,
        _TOP_P,
        _N,
        FieldRule("best_of", ("integer",), minimum=1),
        FieldRule("echo", ("boolean",), "Return the prompt with the completion."),
        FieldRule(
            "logprobs", ("integer",), "Log probabilities of the most likely tokens.", minimum=0
        ),
        _STOP,
        _PRESENCE,
        _FREQUENCY,
        _LOGIT_BIAS,
        _SEED,
        _USER,
    ),
)

EMBEDDINGS = RequestSchema(
    title="EmbeddingRequest",
    operation="embeddings",
    summary="Create embedding vectors (OpenAI Embeddings API).",
    # vLLM also embeds a chat conversation given as `messages` instead of `input`.
    one_of=("input", "messages"),
    fields=(
        _MODEL,
        FieldRule(
            "input",
            ("string", "array"),
            "Text, a list of texts, or token ids (a list, or a list of lists).",
        ),
        FieldRule("encoding_format", ("string",), "float or base64."),
        FieldRule("dimensions", ("integer",), "Size of the returned vectors.", minimum=1),
        _USER,
    ),
)

RESPONSES = RequestSchema(
    title="ResponseRequest",
    operation="responses",
    summary="Create a model response (OpenAI Responses API).",
    streams=True,
    fields=(
        _MODEL,
        FieldRule(
            "input",
            ("string", "array"),
            "Text, or a list of input items (messages, function_call, function_call_output).",
            deep_check=responses_items.check_input,
        ),
        FieldRule("instructions", ("string",), "System (developer) message."),
        FieldRule("max_output_tokens", ("integer",), "Most tokens to generate.", minimum=1),
        _TEMPERATURE,
        _TOP_P,
        _STREAM,
        FieldRule(
            "tools",
            ("array",),
            "Function and namespace tools; hosted tools (web_search...) as the endpoint says.",
            item_types=("object",),
            deep_check=responses_items.check_tools,
        ),
        FieldRule(
            "tool_choice",
            ("string", "object"),
            "none, auto, required, or a tool.",
            deep_check=responses_items.check_tool_choice,
        ),
        _PARALLEL_TOOLS,
        FieldRule("max_tool_calls", ("integer",), minimum=1),
        FieldRule("previous_response_id", ("string",), "Needs the gateway's response store."),
        FieldRule("top_logprobs", ("integer",), minimum=0),
        FieldRule(
            "text",
            ("object",),
            "Text output options (format: text, json_object, json_schema).",
            deep_check=responses_items.check_text,
        ),
        FieldRule("reasoning", ("object",), "Reasoning options (effort, summary)."),
        FieldRule("truncation", ("string",), "auto or disabled."),
        FieldRule("include", ("array",), item_types=("string",)),
        FieldRule("background", ("boolean",)),
        FieldRule("prompt", ("object",)),
        FieldRule("prompt_cache_key", ("string",)),
        FieldRule("prompt_cache_retention", ("string",)),
        FieldRule("safety_identifier", ("string",)),
        FieldRule("client_metadata", ("object",)),
        FieldRule("conversation", ("string", "object")),
        FieldRule("stream_options", ("object",)),
        FieldRule("service_tier", ("string",)),
        _METADATA,
        _STORE,
        _USER,
    ),
)

REQUESTS: dict[str, RequestSchema] = {
    schema.operation: schema for schema in (CHAT_COMPLETIONS, COMPLETIONS, EMBEDDINGS, RESPONSES)
}


def validate(operation: str, body: dict[str, Any]) -> None:
    """Check `body` against the fields OpenAI defines for `operation`; 400 on the first problem."""
    schema = REQUESTS.get(operation)
    if schema is None:
        raise GatewayError(404, "operation_not_found", f"No OpenAI operation {operation!r}.")
    schema.validate(body)
