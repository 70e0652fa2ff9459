"""The one exception type of the API, and its rendering in the OpenAI and Anthropic dialects."""

from __future__ import annotations

from enum import Enum
from typing import Any

import orjson

# OpenAI's `error.type` for each status the gateway answers with.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
# Anthropic's `error.type` values (https://docs.anthropic.com/en/api/errors).
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class Dialect(Enum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class GatewayError(Exception):
    """An error answered to the caller: HTTP status, a snake_case code and a message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        info: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.info = info
        self.headers = headers or {}
        # Extra top-level members of the body (e.g. Globus authorization requirements).
        self.extra = extra or {}

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.code!r}, {self.message!r})"

    def body(self, dialect: Dialect) -> dict[str, Any]:
        if dialect is Dialect.ANTHROPIC:
            error: dict[str, Any] = {
                "type": _ANTHROPIC_TYPES.get(self.status, "api_error"),
                "message": self.message,
            }
            body: dict[str, Any] = {"type": "error", "error": error}
        else:
            error = {
                "message": self.message,
                "type": _OPENAI_TYPES.get(self.status, "api_error"),
                "param": self.param,
                "code": self.code,
            }
            body = {"error": error}
        if self.info:
            error["info"] = self.info
        body.update(self.extra)
        return body

    def render(self, dialect: Dialect) -> bytes:
        return orjson.dumps(self.body(dialect))


def sse_error_event(error: GatewayError, dialect: Dialect) -> bytes:
    """An SSE event that ends a stream which already started, in the caller's dialect."""
    payload = error.render(dialect)
    if dialect is Dialect.ANTHROPIC:
        return b"event: error\ndata: " + payload + b"\n\n"
    return b"data: " + payload + b"\n\n"
