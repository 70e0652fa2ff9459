"""One input line through the interactive path's own steps (candidates, authorization, admission,
the endpoint adapter's `complete`), accounted like an interactive request with route "batch"."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response

from resource_server_async import admission
from resource_server_async.accounting import account
from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.accounting.tokens import usage_in_answer
from resource_server_async.admission.ticket import AdmissionState
from resource_server_async.auth.principal import Principal
from resource_server_async.batches import output_lines
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.errors import GatewayError
from resource_server_async.inference import pipeline, routing
from resource_server_async.unique_ids import new_id

# A limit's refusal is waited out (a batch yields to interactive users), but never for longer.
_MAX_LIMIT_WAIT = 60.0


@dataclass(frozen=True, slots=True)
class LineResult:
    line: int
    ok: bool
    output: str  # the output or error file's line


# At an endpoint's capacity, batch lines wait behind their project's interactive requests
# (admission/capacity.py reads x-priority).
_BATCH_PRIORITY = Headers({"x-priority": "low"})


class LineRunner:
    """Runs the lines of one batch as its principal, with at most `per_endpoint` lines in
    flight on each endpoint."""

    def __init__(self, principal: Principal, operation: str, per_endpoint: int) -> None:
        self.principal = principal
        self.operation = operation
        self._per_endpoint = per_endpoint
        self._slots: dict[str, asyncio.Semaphore] = {}

    def _slot(self, endpoint: BaseEndpoint) -> asyncio.Semaphore:
        slot = self._slots.get(endpoint.slug)
        if slot is None:
            slot = self._slots[endpoint.slug] = asyncio.Semaphore(self._per_endpoint)
        return slot

    async def run(self, number: int, raw: bytes) -> LineResult:
        request_id = new_id()
        outcome = RequestOutcome(
            request_id, time.time(), time.perf_counter(), "batch", self.operation
        )
        outcome.set_principal(self.principal)
        custom_id = ""
        try:
            line = orjson.loads(raw)
            custom_id, body = line["custom_id"], line["body"]
            outcome.model = str(body["model"])
            answer = await self._send(body, outcome)
            return LineResult(
                number, True, output_lines.answered(custom_id, request_id, outcome.status, answer)
            )
        except GatewayError as error:
            outcome.status, outcome.error_code = error.status, error.code
            return LineResult(number, False, output_lines.refused(custom_id, request_id, error))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            # Checked at upload; only a file changed on disk since then gets here.
            broken = GatewayError(400, "invalid_line", f"Line {number} is not a valid batch line.")
            outcome.status, outcome.error_code = broken.status, broken.code
            return LineResult(number, False, output_lines.refused(custom_id, request_id, broken))
        finally:
            outcome.ended = time.perf_counter()
            account(outcome)

    async def _send(self, body: dict[str, Any], outcome: RequestOutcome) -> Any:
        while True:
            parsed = pipeline.ParsedRequest(
                self.principal,
                body,
                orjson.dumps(body),
                outcome.model,
                outcome.request_id,
                False,
                outcome,
                self.operation,
                AdmissionState(),
                # Charged as the principal's interactive requests are, without x-project:
                # the key's default project, else its first (catalog/projects.py).
                catalog.snapshot.projects.choose(self.principal, None),
                _BATCH_PRIORITY,
            )
            if parsed.project is not None:
                outcome.project = parsed.project.name
            try:
                endpoints = routing.candidates(self.principal, outcome.model, self.operation)
                response = await routing.failover(endpoints, parsed, self._attempt)
                outcome.status = response.status_code
                answer = orjson.loads(response.body)
                if isinstance(answer, dict) and (usage := usage_in_answer(answer)) is not None:
                    usage.apply(outcome)
                return answer
            except admission.LimitRefusal as refusal:
                if refusal.code == "allocation_exhausted":
                    raise  # not before the period renews: the line fails, the batch goes on
                wait = float(refusal.headers.get("Retry-After", "1"))
            finally:
                # With the usage known: admission charges what the line really used.
                assert parsed.admission is not None
                await parsed.admission.release(outcome)
            await asyncio.sleep(min(max(wait, 0.05), _MAX_LIMIT_WAIT))

    async def _attempt(self, endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
        async with self._slot(endpoint):
            call = pipeline.prepare(endpoint, self.operation, parsed)
            return pipeline.json_response(await endpoint.complete(call), endpoint, call)
