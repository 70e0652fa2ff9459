"""How the outcome of a Globus Compute task becomes the caller's answer or error."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from resource_server_async.compute.base import (
    ComputeError,
    ComputeNotConfigured,
    ComputeRefused,
    ComputeTimeout,
    EndpointUnavailable,
    RemoteFunctionError,
    ResultTooLarge,
)
from resource_server_async.endpoints.base import UpstreamReply
from resource_server_async.errors import GatewayError
from resource_server_async.upstream import errors as upstream_errors
from resource_server_async.upstream.errors import where

if TYPE_CHECKING:
    from resource_server_async.accounting.outcome import RequestOutcome
    from resource_server_async.endpoints.base import BaseEndpoint

# Deployed inference functions (and ours) report a model server's error answer as
# "API request failed with status code: <status>\nResponse text: <body>[\nResponse headers: ...]".
_FAILED_STATUS = re.compile(r"API request failed with status code: (\d{3})")
_RESPONSE_TEXT = re.compile(r"Response text: (.*?)(?:\nResponse headers:|\Z)", re.DOTALL)
# Timing fields deployed functions add to the server's answer; not part of the OpenAI answer.
METRIC_KEYS = ("response_time", "throughput_tokens_per_second")
SHORT_REASON = 500


def _info(endpoint: BaseEndpoint, task_id: str | None) -> dict[str, Any]:
    info = upstream_errors.endpoint_info(endpoint)
    if task_id:
        info["task_id"] = task_id
    return info


def inference_failure(reason: str) -> tuple[int, bytes] | None:
    """(status, body) of the model server's error answer, if that is what the function reports."""
    status = _FAILED_STATUS.search(reason)
    if status is None:
        return None
    text = _RESPONSE_TEXT.search(reason, status.end())
    body = text.group(1).strip() if text else ""
    return int(status.group(1)), body.encode()


def _with_task(error: GatewayError, endpoint: BaseEndpoint, task_id: str | None) -> GatewayError:
    error.info = {**(error.info or {}), **_info(endpoint, task_id)}
    return error


def failure_error(reason: str, endpoint: BaseEndpoint, task_id: str | None) -> GatewayError:
    """The caller's error for a function that failed: the model server's own 4xx keeps its
    status and message; anything else is 502 with a short reason."""
    failure = inference_failure(reason)
    if failure is not None:
        return _with_task(upstream_errors.reply_error(*failure, endpoint), endpoint, task_id)
    short = " ".join(reason.split()) or "no reason given"
    return GatewayError(
        502,
        "compute_task_failed",
        f"The function serving {where(endpoint)} failed: {short[:SHORT_REASON]}",
        info=_info(endpoint, task_id),
    )


def compute_error(exc: ComputeError, endpoint: BaseEndpoint) -> GatewayError:
    if isinstance(exc, RemoteFunctionError):
        return failure_error(str(exc), endpoint, exc.task_id)
    if isinstance(exc, ResultTooLarge):
        return GatewayError(
            502,
            "compute_result_too_large",
            f"The answer of {where(endpoint)} is larger than the gateway's limit: {exc} "
            "(COMPUTE_MAX_ANSWER_BYTES); ask for less, or stream it.",
            info=_info(endpoint, exc.task_id),
        )
    if isinstance(exc, ComputeTimeout):
        task = f"Globus Compute task {exc.task_id}" if exc.task_id else "the task (not submitted)"
        return GatewayError(
            504,
            "compute_timeout",
            f"{where(endpoint).capitalize()} did not answer in time: {exc}; {task}.",
            info=_info(endpoint, exc.task_id),
        )
    if isinstance(exc, EndpointUnavailable):
        return GatewayError(
            503,
            "endpoint_unavailable",
            f"{where(endpoint).capitalize()} cannot take requests now: {exc}. Try again later.",
            info=_info(endpoint, exc.task_id),
        )
    if isinstance(exc, ComputeNotConfigured):
        return GatewayError(
            503,
            "compute_not_configured",
            f"The gateway cannot run {where(endpoint)}: {exc}. Ask the gateway operator.",
            info=_info(endpoint, exc.task_id),
        )
    if isinstance(exc, ComputeRefused):
        return GatewayError(
            502,
            "compute_service_refused",
            f"Globus Compute refused the gateway's call for {where(endpoint)}: {exc}. Ask the "
            "gateway operator to check the service account's credentials and rights.",
            info=_info(endpoint, exc.task_id),
        )
    return GatewayError(
        502,
        "compute_service_error",
        f"Globus Compute failed for {where(endpoint)}: {exc}",
        info=_info(endpoint, exc.task_id),
    )


def parse_result(result: Any, endpoint: BaseEndpoint, task_id: str | None) -> dict[str, Any]:
    """The function's result as a JSON object (deployed functions return it as text)."""
    if isinstance(result, bytes | bytearray):
        result = bytes(result).decode("utf-8", "replace")
    if isinstance(result, str):
        try:
            result = orjson.loads(result)
        except orjson.JSONDecodeError:
            raise GatewayError(
                502,
                "compute_bad_result",
                f"The function serving {where(endpoint)} returned text that is not JSON: "
                f"{result[:200]!r}",
                info=_info(endpoint, task_id),
            ) from None
    if not isinstance(result, dict):
        raise GatewayError(
            502,
            "compute_bad_result",
            f"The function serving {where(endpoint)} returned {type(result).__name__}, "
            "not a JSON object.",
            info=_info(endpoint, task_id),
        )
    return result


def _error_status(answer: dict[str, Any]) -> int | None:
    """The HTTP status of an error answer returned as the result rather than raised."""
    error = answer.get("error")
    if answer.get("object") != "error" and not isinstance(error, dict):
        return None
    for candidate in (
        answer.get("code"),
        error.get("code") if isinstance(error, dict) else None,
        answer.get("status_code"),
    ):
        if isinstance(candidate, int) and 400 <= candidate <= 599:
            return candidate
    return 502


def reply_from_result(
    result: Any,
    endpoint: BaseEndpoint,
    task_id: str | None,
    outcome: RequestOutcome | None = None,
) -> UpstreamReply:
    answer = parse_result(result, endpoint, task_id)
    status = _error_status(answer)
    if status is not None:
        error = upstream_errors.reply_error(status, orjson.dumps(answer), endpoint)
        raise _with_task(error, endpoint, task_id)
    note_function_timing(answer, outcome)
    return UpstreamReply(200, orjson.dumps(answer))


def note_function_timing(answer: dict[str, Any], outcome: RequestOutcome | None) -> None:
    """The function's own timing (taken out of `answer`), for the record; the client gets the
    server's answer only."""
    response_time, throughput = (answer.pop(key, None) for key in METRIC_KEYS)
    if outcome is not None:
        outcome.response_time = _seconds(response_time)
        outcome.throughput_tokens_per_second = _seconds(throughput)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
