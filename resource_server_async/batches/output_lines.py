"""One line of an output or error file, in OpenAI's batch format."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from resource_server_async.errors import Dialect, GatewayError


def _line(custom_id: str, response: dict[str, Any] | None, error: dict[str, Any] | None) -> str:
    record = {
        "id": "batch_req_" + secrets.token_hex(12),
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }
    return orjson.dumps(record).decode()


def answered(custom_id: str, request_id: str, status: int, body: Any) -> str:
    return _line(custom_id, {"status_code": status, "request_id": request_id, "body": body}, None)


def refused(custom_id: str, request_id: str, error: GatewayError) -> str:
    """A line the gateway or the model server refused: its status and the error body a caller
    of the interactive route would have had."""
    response = {
        "status_code": error.status,
        "request_id": request_id,
        "body": error.body(Dialect.OPENAI),
    }
    return _line(custom_id, response, {"code": error.code, "message": error.message})
