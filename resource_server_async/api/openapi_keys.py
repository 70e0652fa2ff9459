"""The OpenAPI description of personal keys (/resource_server/v1/keys) and /v1/auth/config."""

from __future__ import annotations

from typing import Any

_KEY: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "name",
        "prefix",
        "status",
        "created_at",
        "expires_at",
        "models",
        "clusters",
    ],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "prefix": {
            "type": "string",
            "description": "the key's first characters, to tell keys apart",
        },
        "status": {"enum": ["active", "expired", "revoked"]},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "models": {"type": "array", "items": {"type": "string"}, "description": "empty: all"},
        "clusters": {"type": "array", "items": {"type": "string"}, "description": "empty: all"},
    },
}

_CREATE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 150},
        "expires": {
            "type": "string",
            "pattern": "^[0-9]{1,6}[mhdw]$",
            "description": "lifetime (default 30d), at most PERSONAL_KEY_MAX_DAYS",
        },
        "models": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
        "clusters": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
    },
}


def _json(schema: dict[str, Any], text: str = "OK") -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def keys_paths(errors: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The path items; `errors` are the document's OpenAI-shaped error responses by status."""
    refused = {s: errors[s] for s in ("401", "403") if s in errors}
    conflict = {**errors["400"], "description": "PERSONAL_KEYS_PER_OWNER active keys already"}
    return {
        "/resource_server/v1/keys": {
            "post": {
                "summary": "Create a personal API key (Globus login only); the key is shown once.",
                "tags": ["keys"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _CREATE}},
                },
                "responses": {
                    "201": _json(
                        {**_KEY, "properties": {**_KEY["properties"], "key": {"type": "string"}}},
                        "Created",
                    ),
                    "400": errors["400"],
                    **refused,
                    "409": conflict,
                },
            },
            "get": {
                "summary": "Your personal keys (never the keys themselves).",
                "tags": ["keys"],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"data": {"type": "array", "items": _KEY}}}
                    ),
                    **refused,
                },
            },
        },
        "/resource_server/v1/keys/{key_id}": {
            "delete": {
                "summary": "Revoke one of your personal keys.",
                "tags": ["keys"],
                "parameters": [
                    {
                        "name": "key_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {
                    "200": _json(_KEY),
                    **refused,
                    "404": {**errors["400"], "description": "not your key"},
                },
            }
        },
        "/resource_server/v1/auth/config": {
            "get": {
                "summary": "Public: how a client logs in here (Globus client id, scope).",
                "tags": ["auth"],
                "security": [],
                "responses": {"200": _json({"type": "object"})},
            }
        },
    }
