"""A chat request as admission sees it (the pipeline's ParsedRequest), for tests that call
admission's checks directly: model "m", a two-byte body (one token of prompt), project "team"."""

from __future__ import annotations

from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.admission.ticket import AdmissionState
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.projects import ProjectRef
from resource_server_async.inference.pipeline import ParsedRequest


def chat_request(principal: Principal, outcome: RequestOutcome, max_tokens: int) -> ParsedRequest:
    body = {"model": "m", "messages": [], "max_tokens": max_tokens}
    return ParsedRequest(
        principal,
        body,
        b"{}",
        "m",
        "r",
        False,
        outcome,
        "chat/completions",
        AdmissionState(),
        ProjectRef("team", 1),
    )
