"""Steps 2 and 2b of an inference request: authenticate the caller, then read and validate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.admission.ticket import AdmissionState
from resource_server_async.api.http import read_json_object
from resource_server_async.auth.authenticate import authenticate
from resource_server_async.catalog.projects import PROJECT_HEADER
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.inference.pipeline import ParsedRequest
from resource_server_async.unique_ids import new_id

# Checks a parsed body for an operation; raises a 400 GatewayError (schemas.openai.validate).
Validator = Callable[[str, dict[str, Any]], None]

_MAX_REQUEST_ID = 128


async def read_request(
    request: Request, operation: str, dialect: Dialect, validate: Validator
) -> ParsedRequest:
    """Authenticate first (no body is read for strangers), then read, parse and validate."""
    state = request.scope.get("state", {})
    outcome: RequestOutcome | None = state.get("outcome")
    admission: AdmissionState | None = state.get("admission")
    principal = await authenticate(request)
    if outcome is not None:
        outcome.set_principal(principal)
    project = catalog.snapshot.projects.choose(principal, request.headers.get(PROJECT_HEADER))
    if outcome is not None and project is not None:
        outcome.project = project.name
    body, raw = await read_json_object(request)
    validate(operation, body)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        # Validators check this too; the pipeline cannot route without it whatever they do.
        raise GatewayError(
            400, "missing_required_parameter", "Missing required parameter: 'model'.", param="model"
        )
    stream = body.get("stream") is True
    if outcome is None:  # an app without the capture middleware (api/app.py has it)
        request_id = request.headers.get("x-request-id", "")[:_MAX_REQUEST_ID] or new_id()
        return ParsedRequest(
            principal,
            body,
            raw,
            model,
            request_id,
            stream,
            None,
            operation,
            admission,
            project,
            request.headers,
        )
    outcome.model, outcome.stream = model, stream
    return ParsedRequest(
        principal,
        body,
        raw,
        model,
        outcome.request_id,
        stream,
        outcome,
        operation,
        admission,
        project,
        request.headers,
    )
