"""The OpenAPI description of GET /resource_server/v1/usage (docs/api.md, docs/accounting.md)."""

from __future__ import annotations

from typing import Any

_SUMS = {
    name: {"type": "integer", "minimum": 0, "description": text}
    for name, text in (
        ("requests", "requests answered, refused ones included"),
        ("prompt_tokens", "input tokens the model servers reported (or the gateway estimated)"),
        ("completion_tokens", "output tokens"),
        ("total_tokens", "prompt plus completion tokens"),
        ("errors", "requests answered with HTTP status 400 or above"),
    )
}

_ROW = {
    "type": "object",
    "required": ["day", "model", *_SUMS],
    "properties": {
        "day": {"type": "string", "format": "date", "description": "UTC day"},
        "model": {"type": "string"},
        **_SUMS,
    },
}


def _budget(unit: str) -> dict[str, Any]:
    number = {"type": "number", "minimum": 0}
    return {
        "type": ["object", "null"],
        "description": f"null when the allocation has no {unit} budget",
        "required": ["budget", "spent", "remaining"],
        "properties": {
            "budget": {**number, "description": f"{unit} per period"},
            "spent": {**number, "description": "this period, requests in flight included"},
            "remaining": {**number, "description": "budget minus spent, never below 0"},
        },
    }


_ALLOCATION = {
    "type": "object",
    "required": ["allocation", "project", "period", "start", "renews_at", "tokens", "gpu_seconds"],
    "properties": {
        "allocation": {"type": "string", "description": "its name, as in allocation_exhausted"},
        "project": {"type": "string"},
        "period": {"enum": ["month", "week", "day"]},
        "start": {"type": "string", "format": "date-time"},
        "renews_at": {"type": "string", "format": "date-time"},
        "model": {"type": ["string", "null"], "description": "only this model"},
        "cluster": {"type": ["string", "null"], "description": "only this cluster"},
        "tokens": _budget("token"),
        "gpu_seconds": _budget("GPU-second"),
    },
}

USAGE_SCHEMA = {
    "type": "object",
    "required": ["object", "principal", "start", "end", "data", "total"],
    "properties": {
        "object": {"const": "usage"},
        "principal": {"type": "string", "description": "the principal id, or `all`"},
        "start": {"type": "string", "format": "date"},
        "end": {"type": "string", "format": "date", "description": "included"},
        "group": {"type": ["string", "null"]},
        "cluster": {"type": ["string", "null"]},
        "model": {"type": ["string", "null"]},
        "data": {"type": "array", "items": _ROW, "description": "one row per model and day"},
        "total": {"type": "object", "properties": _SUMS},
        "allocations": {
            "type": "array",
            "items": _ALLOCATION,
            "description": "the allocations of your projects, current period (empty when "
            "`principal` names someone else)",
        },
    },
}


def _query(name: str, text: str, fmt: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if fmt:
        schema["format"] = fmt
    return {"name": name, "in": "query", "required": False, "description": text, "schema": schema}


def usage_path(errors: dict[str, Any]) -> dict[str, Any]:
    """The path item; `errors` are the document's OpenAI-shaped error responses by status."""
    return {
        "get": {
            "summary": "Your requests, tokens and errors per model and UTC day, and your "
            "projects' allocations.",
            "tags": ["usage"],
            "parameters": [
                _query("start", "first day (default: USAGE_DEFAULT_DAYS before end)", "date"),
                _query("end", "last day, included (default: today, UTC)", "date"),
                _query("principal", "operators: another principal's id, or `all`"),
                _query("group", "operators: only records of this Globus group"),
                _query("cluster", "only this cluster"),
                _query("model", "only this model"),
            ],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": USAGE_SCHEMA}},
                },
                "400": {
                    **errors["400"],
                    "description": "A date that is not ISO, start after end, a window longer "
                    "than USAGE_MAX_DAYS, or more rows than USAGE_MAX_ROWS (`param` names it).",
                },
                "401": errors["401"],
                "403": {
                    **errors["403"],
                    "description": "`principal` or `group` from a caller who is not an operator.",
                },
                "503": {**errors["503"], "description": "Too many usage queries waiting."},
            },
        }
    }
