"""The OpenAPI description of the Files and Batches APIs and the cluster batch routes
(docs/batches.md), and the headers every inference route reads and answers with."""

from __future__ import annotations

from typing import Any

_V1 = "/resource_server/v1"

_FILE: dict[str, Any] = {
    "type": "object",
    "description": "OpenAI's file object.",
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "file"},
        "bytes": {"type": "integer"},
        "created_at": {"type": "integer"},
        "filename": {"type": "string"},
        "purpose": {"const": "batch"},
    },
}

_BATCH: dict[str, Any] = {
    "type": "object",
    "description": "OpenAI's batch object (status, request_counts, output_file_id, ...).",
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "batch"},
        "endpoint": {"type": "string"},
        "input_file_id": {"type": "string"},
        "status": {
            "enum": [
                "validating",
                "failed",
                "in_progress",
                "finalizing",
                "completed",
                "expired",
                "cancelling",
                "cancelled",
            ]
        },
        "output_file_id": {"type": ["string", "null"]},
        "error_file_id": {"type": ["string", "null"]},
        "request_counts": {
            "type": "object",
            "properties": {n: {"type": "integer"} for n in ("total", "completed", "failed")},
        },
        "metadata": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
    },
}

_CREATE_BATCH: dict[str, Any] = {
    "type": "object",
    "required": ["input_file_id", "endpoint", "completion_window"],
    "properties": {
        "input_file_id": {"type": "string"},
        "endpoint": {"enum": ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]},
        "completion_window": {"const": "24h"},
        "metadata": {
            "type": "object",
            "maxProperties": 16,
            "additionalProperties": {"type": "string", "maxLength": 512},
        },
    },
}

_CLUSTER_BATCH: dict[str, Any] = {
    "type": "object",
    "required": ["model", "input_file"],
    "properties": {
        "model": {"type": "string"},
        "input_file": {
            "type": "string",
            "description": "a JSONL file inside the cluster's batch folders",
        },
        "output_folder_path": {"type": "string", "description": "default: the input's folder"},
    },
}


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": item},
            "first_id": {"type": ["string", "null"]},
            "last_id": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"},
        },
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(
    summary: str,
    answer: dict[str, Any],
    errors: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    statuses: tuple[str, ...] = ("400", "401", "404"),
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["batches"],
        "responses": {"200": {"description": "OK", "content": answer}}
        | {s: errors[s] for s in statuses if s in errors},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": body}
    if parameters:
        operation["parameters"] = parameters
    return operation


def _param(
    name: str, where: str, text: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema or {"type": "string"},
        "description": text,
    }


_PAGING = [
    _param("after", "query", "the last id of the page before"),
    _param(
        "limit", "query", "1-100, default 20", {"type": "integer", "minimum": 1, "maximum": 100}
    ),
]


def batch_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """Files, Batches and the cluster batch routes, with `errors` (the OpenAI error answers)."""
    file_id = [_param("file_id", "path", "a file's id")]
    batch_id = [_param("batch_id", "path", "a batch's id")]
    upload = {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "purpose"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "purpose": {"const": "batch"},
                },
            }
        }
    }
    return {
        f"{_V1}/files": {
            "post": _operation(
                "Upload a JSONL batch input file (checked line by line).",
                _json(_FILE),
                errors,
                body=upload,
                statuses=("400", "401", "413"),
            ),
            "get": _operation(
                "Your files, newest first.",
                _json(_page(_FILE)),
                errors,
                parameters=[_param("purpose", "query", "only files of this purpose"), *_PAGING],
            ),
        },
        f"{_V1}/files/{{file_id}}": {
            "get": _operation("One of your files.", _json(_FILE), errors, parameters=file_id),
            "delete": _operation(
                "Delete one of your files (409 while a batch still reads it).",
                _json({"type": "object"}),
                errors,
                parameters=file_id,
                statuses=("401", "404", "409"),
            ),
        },
        f"{_V1}/files/{{file_id}}/content": {
            "get": _operation(
                "A file's bytes (input, output or error JSONL).",
                {"application/jsonl": {"schema": {"type": "string"}}},
                errors,
                parameters=file_id,
            )
        },
        f"{_V1}/batches": {
            "post": _operation(
                "Create a batch from an uploaded file.",
                _json(_BATCH),
                errors,
                body=_json(_CREATE_BATCH),
                statuses=("400", "401", "404", "429"),
            ),
            "get": _operation(
                "Your batches, newest first; `?status=` lists your cluster batches in that "
                "status instead (the reference gateway's form).",
                _json(_page(_BATCH)),
                errors,
                parameters=[*_PAGING, _param("status", "query", "cluster batches in this status")],
            ),
        },
        f"{_V1}/batches/{{batch_id}}": {
            "get": _operation("One of your batches.", _json(_BATCH), errors, parameters=batch_id)
        },
        f"{_V1}/batches/{{batch_id}}/cancel": {
            "post": _operation(
                "Cancel a batch: lines not yet sent are not run.",
                _json(_BATCH),
                errors,
                parameters=batch_id,
            )
        },
        f"{_V1}/batches/{{batch_id}}/result": {
            "get": _operation(
                "A finished cluster batch's result (results file, progress file, metrics).",
                _json({"type": "object"}),
                errors,
                parameters=batch_id,
            )
        },
        "/resource_server/{cluster}/{framework}/v1/batches": {
            "post": _operation(
                "Run a JSONL file already on the cluster through its batch function.",
                _json({"type": "object"}),
                errors,
                body=_json(_CLUSTER_BATCH),
                parameters=[
                    _param("cluster", "path", "a cluster with batch folders"),
                    _param("framework", "path", "its framework (e.g. vllm)"),
                ],
            )
        },
    }


# What an inference route reads beside the body, and what its answers carry.
INFERENCE_HEADERS: list[dict[str, Any]] = [
    _param("x-project", "header", "the project to charge (one of yours; default: the key's)"),
    _param(
        "x-priority",
        "header",
        "your request's priority in an endpoint's fair-share queue",
        {"enum": ["high", "normal", "low"]},
    ),
    _param(
        "x-session-id",
        "header",
        "federated routes: requests of one session go to the same server while it can serve "
        "them (`x-alcf-session-id` is accepted too)",
    ),
]

_ANSWER_HEADERS = {
    "x-request-id": "the gateway's id of this request (quote it when asking for help)",
    "x-served-by": "the cluster and framework that served it: `<cluster>/<framework>`",
}
_RATE_TEXT = {
    "limit": "your {kind} limit per minute on this endpoint",
    "remaining": "{kind} left now",
    "reset": "when the {kind} bucket is full again",
}


def _answer_headers(anthropic: bool) -> dict[str, Any]:
    texts = dict(_ANSWER_HEADERS)
    for kind in ("requests", "tokens"):
        for part, text in _RATE_TEXT.items():
            name = (
                f"anthropic-ratelimit-{kind}-{part}" if anthropic else f"x-ratelimit-{part}-{kind}"
            )
            texts[name] = text.format(kind=kind)
    return {name: {"description": t, "schema": {"type": "string"}} for name, t in texts.items()}


# The headers of an inference answer, as OpenAI's routes and Anthropic's send them.
ANSWER_HEADERS = _answer_headers(anthropic=False)
ANTHROPIC_ANSWER_HEADERS = _answer_headers(anthropic=True)
