"""The OpenAPI document of the API, generated from the request schemas that validate requests."""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from resource_server_async.schemas.rules import RequestSchema

# Schema modules (each exposes REQUESTS: {operation: RequestSchema}) and the note each family
# adds to its request descriptions. A family adds itself here to appear in the document.
SCHEMA_FAMILIES: tuple[str, ...] = ("resource_server_async.schemas.openai",)

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

_ERROR_SCHEMA = {
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

_MODEL_LIST_SCHEMA = {
    "type": "object",
    "properties": {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "object": {"const": "model"},
                    "created": {"type": "integer"},
                    "owned_by": {"type": "string", "description": "cluster(s), comma-separated"},
                    "clusters": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
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


def request_schemas() -> dict[str, tuple[RequestSchema, str]]:
    """{operation: (schema, note on forwarded fields)} of every documented family."""
    found: dict[str, tuple[RequestSchema, str]] = {}
    for name in SCHEMA_FAMILIES:
        module = importlib.import_module(name)
        note = getattr(module, "FORWARDED_NOTE", "")
        for operation, schema in module.REQUESTS.items():
            found[operation] = (schema, note)
    return found


def _errors() -> dict[str, Any]:
    return {
        status: {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status, text in _ERROR_STATUSES.items()
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


def _inference(schema: RequestSchema, federated: bool) -> dict[str, Any]:
    answer: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
    if schema.streams:
        answer["text/event-stream"] = {
            "schema": {"type": "string", "description": "Server-sent events when stream is true."}
        }
    where = (
        "The gateway picks a cluster that serves the model and that you may use."
        if federated
        else "Runs on the given cluster and framework."
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
        "responses": {"200": {"description": "The model server's answer.", "content": answer}}
        | _errors(),
    }
    if not federated:
        operation["parameters"] = _CLUSTER_PARAMS
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
    schemas = request_schemas()
    paths: dict[str, Any] = {}
    for operation, (schema, _) in schemas.items():
        paths[f"/resource_server/{{cluster}}/{{framework}}/v1/{operation}"] = _inference(
            schema, federated=False
        )
    for operation, (schema, _) in schemas.items():
        paths[f"/resource_server/v1/{operation}"] = _inference(schema, federated=True)
    paths["/resource_server/v1/models"] = _listing(
        "Models you may use, on any cluster (OpenAI list format).", _MODEL_LIST_SCHEMA
    )
    paths["/resource_server/{cluster}/{framework}/v1/models"] = _listing(
        "Models you may use on one cluster and framework.", _MODEL_LIST_SCHEMA, _CLUSTER_PARAMS
    )
    paths["/resource_server/list-endpoints"] = _listing(
        "Clusters, frameworks, models and operations you may use.", _LIST_ENDPOINTS_SCHEMA
    )
    components: dict[str, Any] = {
        schema.title: schema.json_schema(note) for schema, note in schemas.values()
    }
    components["Error"] = _ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Inference gateway",
            "version": "1",
            "description": "OpenAI-compatible inference on HPC clusters. Authenticate with "
            "`Authorization: Bearer <Globus access token or gateway API key>`.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
