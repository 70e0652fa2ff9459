"""How a model server's failures become the caller's error, naming the cluster and model."""

from __future__ import annotations

import logging
import math
import re
from typing import TYPE_CHECKING, Any

import orjson

from resource_server_async.errors import GatewayError

if TYPE_CHECKING:
    from resource_server_async.endpoints.base import BaseEndpoint

logger = logging.getLogger(__name__)

_MAX_MESSAGE = 1000
# A server's own failure message is for its operator; the caller gets its gist, this long.
_MAX_SERVER_MESSAGE = 200
_TRACEBACK_HEADER = "Traceback (most recent call last)"
_FRAME = re.compile(r'File "[^"\n]*", line \d+(?:, in [^\s,]+)?')
# Two or more path segments (POSIX or Windows): where the server's code or data lives.
# 5xx answers that report a state the operator chose (a Metis model stopped), not a failure.
_STATES = frozenset({"model_not_live"})
_PATH = re.compile(r"(?:\b[A-Za-z]:)?(?:[\\/][\w.@+~-]+){2,}[\\/]?")


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


def _without_traceback(lines: list[str]) -> list[str]:
    """The lines of a message without Python traceback frames and the source shown under them
    (the exception's own line, unindented, is kept)."""
    kept: list[str] = []
    in_traceback = False
    for line in lines:
        if not line.strip():
            continue
        if line.strip().startswith(_TRACEBACK_HEADER) or _FRAME.match(line.strip()):
            in_traceback = True
            continue
        if in_traceback and line[:1].isspace():
            continue
        in_traceback = False
        kept.append(line.strip())
    return kept


def clean_server_message(message: str) -> str:
    """A 5xx message fit for the caller: no traceback, no file paths, short."""
    text = " ".join(_without_traceback(message.splitlines()))
    text = _PATH.sub("…", _FRAME.sub("", text))
    text = " ".join(text.split())
    if len(text) > _MAX_SERVER_MESSAGE:
        text = text[: _MAX_SERVER_MESSAGE - 1].rstrip() + "…"
    return text or "no details"


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
        f"The model server for {where(endpoint)} failed (HTTP {status}): "
        f"{clean_server_message(message)}",
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


def stream_unfinished(endpoint: BaseEndpoint) -> GatewayError:
    """The stream said `[DONE]` without the final chunk that carries its finish reason (a
    server that aborted the request, as llama.cpp does to concurrent ones by default)."""
    return GatewayError(
        502,
        "upstream_stream_interrupted",
        f"The stream from {where(endpoint)} ended without its final chunk (no finish reason): "
        "the answer is incomplete.",
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


def busy(endpoint: BaseEndpoint, waited: float) -> GatewayError:
    """Every pooled connection to the server stayed in use for `waited` seconds."""
    return GatewayError(
        503,
        "upstream_busy",
        f"The model server for {where(endpoint)} is busy: all the gateway's connections to it "
        f"stayed in use for {waited:g} s. Try again later.",
        info=endpoint_info(endpoint),
        headers={"Retry-After": str(max(1, math.ceil(waited)))},
    )


def response_too_large(endpoint: BaseEndpoint, limit: int) -> GatewayError:
    return GatewayError(
        502,
        "upstream_response_too_large",
        f"The answer of {where(endpoint)} is larger than the gateway's limit of {limit} bytes "
        "(UPSTREAM_MAX_RESPONSE_BYTES); ask for less, or stream it.",
        info=endpoint_info(endpoint, limit=limit),
    )


def report(error: GatewayError, endpoint: BaseEndpoint, request_id: str) -> GatewayError:
    """Log a failure of the model server (or of the gateway's call to it) for the operator,
    once, without any body; the caller's own mistakes (4xx) are not logged. Returns `error`."""
    if error.status >= 500 and error.code not in _STATES:
        _log("upstream failure", error, endpoint, request_id)
    return error


def report_cut(error: GatewayError, endpoint: BaseEndpoint, request_id: str) -> None:
    """Log a stream that ended with an error event instead of its end."""
    _log("stream cut", error, endpoint, request_id)


def _log(what: str, error: GatewayError, endpoint: BaseEndpoint, request_id: str) -> None:
    upstream_status = (error.info or {}).get("upstream_status", "-")
    logger.warning(
        "%s: request_id=%s cluster=%s model=%s code=%s status=%s upstream_status=%s",
        what,
        request_id or "-",
        endpoint.row.cluster,
        endpoint.model,
        error.code,
        error.status,
        upstream_status,
    )
