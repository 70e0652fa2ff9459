"""The OpenAPI document of the API, generated from the request schemas that validate requests."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from resource_server_async.api.openapi_batches import (
    ANSWER_HEADERS,
    ANTHROPIC_ANSWER_HEADERS,
    INFERENCE_HEADERS,
    batch_paths,
)
from resource_server_async.api.openapi_keys import keys_paths
from resource_server_async.api.openapi_usage import usage_path
from resource_server_async.catalog.capabilities import Capabilities
from resource_server_async.errors import Dialect
from resource_server_async.schemas.rules import RequestSchema

# Schema modules. Each exposes REQUESTS: {operation: RequestSchema}, and may add FORWARDED_NOTE
# (what happens to fields it does not list) and ERROR_DIALECT (default OpenAI). A family adds
# itself here to appear in the document.
SCHEMA_FAMILIES: tuple[str, ...] = (
    "resource_server_async.schemas.openai",
    "resource_server_async.schemas.anthropic",
)

_ERROR_STATUSES = {
    "400": "Malformed JSON, or a field of the wrong type or out of range (`param` names it).",
    "401": "No credential, or an unknown, expired or revoked one.",
    "403": "The caller may not use this cluster or model.",
    "404": "Unknown cluster, framework or model, or an operation the cluster does not offer; "
    "the message lists what the caller may use.",
    "413": "The request body is larger than the gateway's limit.",
    "502": "The model server failed, answered something that is not JSON, or refused the "
    "gateway's credentials.",
    "503": "The model server cannot be reached, the model is not live, the cluster is under "
    "maintenance, or the endpoint's key is not configured (with Retry-After).",
    "504": "The model server did not answer in time.",
}

# What a 400 says about the refused field, in each dialect.
_BAD_FIELD = {
    Dialect.OPENAI: "Malformed JSON, or a field of the wrong type or out of range (`param` names "
    "it).",
    Dialect.ANTHROPIC: "Malformed JSON, a field of the wrong type or out of range (the message "
    "starts with its path, e.g. `max_tokens: Field required`), or content "
    "that cannot be translated for a server that speaks only chat/completions.",
}

_OPENAI_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "e.g. invalid_request_error"},
                "param": {"type": ["string", "null"]},
                "code": {"type": "string", "description": "snake_case reason"},
                "info": {"type": "object", "description": "e.g. cluster and model"},
            },
        }
    },
}

_ANTHROPIC_ERROR_SCHEMA = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {
                    "type": "string",
                    "description": "invalid_request_error, authentication_error, "
                    "permission_error, not_found_error, request_too_large, api_error",
                },
                "message": {"type": "string"},
                "info": {"type": "object", "description": "e.g. cluster and model"},
            },
        },
    },
}

_ERROR_COMPONENTS = {Dialect.OPENAI: "Error", Dialect.ANTHROPIC: "AnthropicError"}

# Who may call: every route takes a bearer token, or the same token as the Anthropic client's
# own header.
_SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A Globus access token or a gateway API key (igw_...).",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The same token, as the Anthropic client sends it.",
    },
}
_SECURITY: dict[Dialect, list[dict[str, list[str]]]] = {
    Dialect.OPENAI: [{"bearer": []}, {"apiKey": []}],
    Dialect.ANTHROPIC: [{"bearer": []}, {"apiKey": []}],
}
_STREAM_TEXT = {
    Dialect.OPENAI: "Server-sent events when stream is true.",
    Dialect.ANTHROPIC: "Server-sent events when stream is true (message_start, "
    "content_block_start, content_block_delta, content_block_stop, message_delta, message_stop; "
    "a failure after the start is an `error` event).",
}

_MODEL_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string", "description": "cluster(s), comma-separated"},
        "clusters": {"type": "array", "items": {"type": "string"}},
        "served_by": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "cluster": {"type": "string"},
                    "framework": {"type": "string"},
                    "state": {
                        "type": "string",
                        "description": "maintenance, or the live state: ready, starting, "
                        "queued, free_nodes, reachable, unknown, offline",
                    },
                    "base_url": {"type": "string"},
                },
            },
        },
        "aliases": {"type": "array", "items": {"type": "string"}},
        "capabilities": Capabilities.model_json_schema(),
    },
}

_MODEL_LIST_SCHEMA = {
    "type": "object",
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _MODEL_SCHEMA}},
}

_LIST_ENDPOINTS_SCHEMA = {
    "type": "object",
    "properties": {
        "clusters": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "base_url": {"type": "string"},
                    "frameworks": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {
                                "models": {"type": "array", "items": {"type": "string"}},
                                "endpoints": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        }
    },
}


@dataclass(frozen=True, slots=True)
class DocumentedRequest:
    schema: RequestSchema
    forwarded_note: str
    dialect: Dialect


def request_schemas() -> dict[str, DocumentedRequest]:
    """{operation: its schema, note on forwarded fields and error dialect}, of every family."""
    found: dict[str, DocumentedRequest] = {}
    for name in SCHEMA_FAMILIES:
        module = importlib.import_module(name)
        note = getattr(module, "FORWARDED_NOTE", "")
        dialect = getattr(module, "ERROR_DIALECT", Dialect.OPENAI)
        for operation, schema in module.REQUESTS.items():
            found[operation] = DocumentedRequest(schema, note, dialect)
    return found


def _errors(dialect: Dialect = Dialect.OPENAI) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{_ERROR_COMPONENTS[dialect]}"}
    texts = _ERROR_STATUSES | {"400": _BAD_FIELD[dialect]}
    return {
        status: {"description": text, "content": {"application/json": {"schema": ref}}}
        for status, text in texts.items()
    }


def _path_param(name: str, text: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": text,
    }


_CLUSTER_PARAMS = [
    _path_param("cluster", "Cluster name, as listed by GET /resource_server/list-endpoints."),
    _path_param("framework", "Serving framework on that cluster (e.g. vllm)."),
]


def _inference(request: DocumentedRequest, federated: bool) -> dict[str, Any]:
    schema, dialect = request.schema, request.dialect
    answer: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if schema.streams:
        answer["text/event-stream"] = {
            "schema": {"type": "string", "description": _STREAM_TEXT[dialect]}
        }
    where = (
        "The gateway picks a cluster that serves the model and that you may use."
        if federated
        else "Runs on the given cluster and framework."
    )
    if dialect is Dialect.ANTHROPIC:
        where += (
            " Authenticate with `x-api-key: <token>` (what the Anthropic client sends) or "
            "`Authorization: Bearer <token>`; errors come in Anthropic's shape."
        )
    operation: dict[str, Any] = {
        "summary": schema.summary,
        "description": where,
        "operationId": ("federated_" if federated else "") + schema.operation.replace("/", "_"),
        "tags": ["inference (federated)" if federated else "inference"],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{schema.title}"}}
            },
        },
        "responses": {
            "200": {
                "description": "The model server's answer.",
                "content": answer,
                "headers": ANTHROPIC_ANSWER_HEADERS
                if dialect is Dialect.ANTHROPIC
                else ANSWER_HEADERS,
            }
        }
        | _errors(dialect),
        "security": _SECURITY[dialect],
        "parameters": INFERENCE_HEADERS if federated else _CLUSTER_PARAMS + INFERENCE_HEADERS,
    }
    return {"post": operation}


def _listing(
    summary: str, schema: dict[str, Any], params: list[Any] | None = None
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["discovery"],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
            "401": _errors()["401"],
        },
    }
    if params:
        operation["parameters"] = params
        operation["responses"]["404"] = _errors()["404"]
    return {"get": operation}


@cache
def openapi_document() -> dict[str, Any]:
    requests = request_schemas()
    paths: dict[str, Any] = {}
    for operation, request in requests.items():
        paths[f"/resource_server/{{cluster}}/{{framework}}/v1/{operation}"] = _inference(
            request, federated=False
        )
    for operation, request in requests.items():
        paths[f"/resource_server/v1/{operation}"] = _inference(request, federated=True)
    paths["/resource_server/v1/models"] = _listing(
        "Models you may use, on any cluster (OpenAI list format).", _MODEL_LIST_SCHEMA
    )
    paths["/resource_server/{cluster}/{framework}/v1/models"] = _listing(
        "Models you may use on one cluster and framework.", _MODEL_LIST_SCHEMA, _CLUSTER_PARAMS
    )
    model_id = [_path_param("model_id", "A model's name or one of its aliases.")]
    paths["/resource_server/v1/models/{model_id}"] = _listing(
        "One model you may use, on any cluster.", _MODEL_SCHEMA, model_id
    )
    paths["/resource_server/{cluster}/{framework}/v1/models/{model_id}"] = _listing(
        "One model you may use on one cluster and framework.",
        _MODEL_SCHEMA,
        _CLUSTER_PARAMS + model_id,
    )
    paths["/resource_server/{cluster}/models"] = _listing(
        "The cluster's models you may use, as a bare list (the reference gateway's form); "
        "`?model_id=` for one.",
        {"type": "array", "items": {"type": "object"}},
        _CLUSTER_PARAMS[:1],
    )
    paths["/resource_server/list-endpoints"] = _listing(
        "Clusters, frameworks, models and operations you may use.", _LIST_ENDPOINTS_SCHEMA
    )
    paths["/resource_server/v1/usage"] = usage_path(_errors())
    paths.update(keys_paths(_errors()))
    for path, operations in batch_paths(_errors()).items():
        paths.setdefault(path, {}).update(operations)
    components: dict[str, Any] = {
        request.schema.title: request.schema.json_schema(request.forwarded_note)
        for request in requests.values()
    }
    components[_ERROR_COMPONENTS[Dialect.OPENAI]] = _OPENAI_ERROR_SCHEMA
    components[_ERROR_COMPONENTS[Dialect.ANTHROPIC]] = _ANTHROPIC_ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Inference gateway",
            "version": "1",
            "description": "OpenAI-compatible and Anthropic Messages inference on HPC clusters. "
            "Authenticate with `Authorization: Bearer <Globus access token or gateway API key>`; "
            "every route also takes the token as `x-api-key` (what the Anthropic client sends).",
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _SECURITY_SCHEMES},
        "security": [{"bearer": []}, {"apiKey": []}],
    }
