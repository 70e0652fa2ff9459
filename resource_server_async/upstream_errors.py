"""How a model server's failures become the caller's error, naming the cluster and model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from resource_server_async.errors import GatewayError

if TYPE_CHECKING:
    from resource_server_async.endpoints.base import BaseEndpoint

_MAX_MESSAGE = 1000


def where(endpoint: BaseEndpoint) -> str:
    """How every error message names the endpoint."""
    return f"model {endpoint.model!r} on cluster {endpoint.row.cluster!r}"


def endpoint_info(endpoint: BaseEndpoint, **extra: Any) -> dict[str, Any]:
    """The `info` object of an endpoint's errors, for clients that act on it."""
    return {"cluster": endpoint.row.cluster, "model": endpoint.model, **extra}


def _scrub(text: str, secret: str | None) -> str:
    # A misbehaving proxy may echo request headers in its error page; never pass the key on.
    if secret and secret in text:
        text = text.replace(secret, "***")
    return text[:_MAX_MESSAGE]


def parse_error_body(body: bytes) -> tuple[str, str | None, str | None]:
    """(message, param, code) from the error shapes model servers use: OpenAI and vLLM
    (`{"error": {...}}` or `{"object": "error", "message": ...}`), Anthropic, FastAPI's
    `{"detail": ...}`, or plain text."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace").strip() or "(empty body)", None, None
    if not isinstance(data, dict):
        return str(data), None, None
    error = data.get("error")
    source = error if isinstance(error, dict) else data
    message = source.get("message")
    if message is None:
        message = data.get("detail", error if isinstance(error, str) else None)
    if message is None:
        message = body.decode(errors="replace")
    if not isinstance(message, str):
        message = orjson.dumps(message).decode()
    param = source.get("param")
    code = source.get("code")
    return (
        message,
        param if isinstance(param, str) else None,
        code if isinstance(code, str) else None,
    )


def reply_error(
    status: int, body: bytes, endpoint: BaseEndpoint, secret: str | None = None
) -> GatewayError:
    """The caller's error for a model server's non-2xx answer.

    4xx keeps its status and message (the request was wrong), except 401/403: those mean the
    server refused the gateway's own credential, which the caller cannot fix, so they are 502.
    Anything else is the server failing: 502.
    """
    message, param, code = parse_error_body(body)
    message = _scrub(message, secret)
    info = endpoint_info(endpoint, upstream_status=status)
    if status in (401, 403):
        return GatewayError(
            502,
            "upstream_auth_failed",
            f"The model server for {where(endpoint)} refused the gateway's credentials "
            f"(HTTP {status}). Ask the gateway operator to check the endpoint's API key.",
            info=info,
        )
    if 400 <= status < 500:
        return GatewayError(status, code or "upstream_error", message, param=param, info=info)
    return GatewayError(
        502,
        "upstream_error",
        f"The model server for {where(endpoint)} failed (HTTP {status}): {message}",
        info=info,
    )


def unreachable(endpoint: BaseEndpoint) -> GatewayError:
    return GatewayError(
        503,
        "upstream_unreachable",
        f"The model server for {where(endpoint)} cannot be reached. Try again later.",
        info=endpoint_info(endpoint),
    )


def timed_out(endpoint: BaseEndpoint, seconds: float) -> GatewayError:
    return GatewayError(
        504,
        "upstream_timeout",
        f"The model server for {where(endpoint)} did not answer within {seconds:g} s.",
        info=endpoint_info(endpoint),
    )


def broken(endpoint: BaseEndpoint, reason: str) -> GatewayError:
    return GatewayError(
        502,
        "upstream_error",
        f"The model server for {where(endpoint)} failed: {reason}",
        info=endpoint_info(endpoint),
    )


def stream_cut(endpoint: BaseEndpoint) -> GatewayError:
    return GatewayError(
        502,
        "upstream_stream_interrupted",
        f"The stream from {where(endpoint)} ended before it was complete.",
        info=endpoint_info(endpoint),
    )


def stream_stalled(endpoint: BaseEndpoint, seconds: float) -> GatewayError:
    return GatewayError(
        504,
        "upstream_timeout",
        f"The stream from {where(endpoint)} sent nothing for {seconds:g} s.",
        info=endpoint_info(endpoint),
    )


def not_live(endpoint: BaseEndpoint, state: str) -> GatewayError:
    return GatewayError(
        503,
        "model_not_live",
        f"{where(endpoint).capitalize()} is not available: its status is {state!r}. "
        "Try again later.",
        info=endpoint_info(endpoint, status=state),
    )
