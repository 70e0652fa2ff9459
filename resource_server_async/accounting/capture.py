"""Pure ASGI middleware that captures the outcome of every request on an inference route.

At receipt it makes the RequestOutcome (request id, route, operation, client address) and
puts it in the scope's state, where the steps fill in what they learn (principal, endpoint,
timings, tokens, error code). It watches `send` for the status and the end of the body, and
`receive` for the client's disconnect; at the end it calls `accounting.account` once. It also
counts the requests in flight (accounting/in_flight.py). Every
answer gets `x-request-id` and `Server-Timing` (a 500 rendered by the outermost error
handling, outside this middleware, through `answer_headers`). Plain ASGI, as api/edge.py, not
BaseHTTPMiddleware (an extra task per request).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Awaitable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resource_server_async import chunk_writer
from resource_server_async.accounting import account, account_once_settled, in_flight
from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.accounting.tokens import Usage, usage_in_json
from resource_server_async.unique_ids import new_id

# The operations whose routes are recorded (…/v1/<operation>).
INFERENCE_OPERATIONS = frozenset(
    {
        "chat/completions",
        "completions",
        "embeddings",
        "responses",
        "messages",
        "messages/count_tokens",
    }
)
_PREFIX = "/resource_server/"
# A client's request id is kept when it is short and plain (it goes into logs and headers).
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
# Peers remembered as trusted or not (a bound: peers are many on a public gateway).
_MAX_KNOWN_PEERS = 1024
# Non-streamed answers longer than this are not searched for usage (embeddings of a huge
# batch); UPSTREAM_MAX_RESPONSE_BYTES bounds them anyway.
_MAX_USAGE_BODY = 64 * 1024 * 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def inference_target(path: str) -> tuple[str, str, str, str] | None:
    """(route, operation, cluster, framework) of an inference path, or None for other paths."""
    if not path.startswith(_PREFIX):
        return None
    rest = path[len(_PREFIX) :]
    if rest.startswith("v1/"):
        operation = rest[3:]
        return ("federated", operation, "", "") if operation in INFERENCE_OPERATIONS else None
    parts = rest.split("/", 2)
    if len(parts) < 3 or not parts[2].startswith("v1/"):
        return None
    operation = parts[2][3:]
    if operation not in INFERENCE_OPERATIONS:
        return None
    return "cluster", operation, parts[0], parts[1]


class CaptureMiddleware:
    """Makes, fills and accounts one RequestOutcome per request on an inference route."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: Sequence[Network] = (),
        record_prompts: bool = False,
        prompt_max_chars: int = 0,
    ) -> None:
        self.app = app
        self.trusted_proxies = tuple(trusted_proxies)
        self.record_prompts = record_prompts
        self.prompt_max = prompt_max_chars
        self._peers: dict[str, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (target := inference_target(scope["path"])) is None:
            await self.app(scope, receive, send)
            return
        route, operation, cluster, framework = target
        request_id, forwarded = _request_headers(scope)
        outcome = RequestOutcome(
            request_id=request_id or new_id(),
            received_at=time.time(),
            started=time.perf_counter(),
            route=route,
            operation=operation,
            client_address=self._client_address(scope, forwarded),
            cluster=cluster,
            framework=framework,
        )
        state = scope.get("state")
        if state is None:
            scope["state"] = state = {}
        state["outcome"] = outcome
        if self.record_prompts:
            chunk_writer.hide(scope)  # the answer's start is recorded: every chunk through send
        answer = _Answer(self.prompt_max if self.record_prompts else 0)
        watched = _Watched(outcome, answer, [] if self.record_prompts else None, receive, send)
        in_flight.enter()
        try:
            await self.app(scope, watched.receive, watched.send)
        except BaseException:
            if outcome.status == 0:
                outcome.status, outcome.error_code = 500, "internal_error"
            raise
        finally:
            in_flight.leave()
            self._finish(outcome, answer, watched.prompt or [])

    def _finish(self, outcome: RequestOutcome, answer: _Answer, prompt: list[bytes]) -> None:
        if outcome.ended is None:
            outcome.ended = time.perf_counter()
            incomplete = not (outcome.disconnected or outcome.error_code or outcome.last_event_sent)
            if outcome.status and incomplete:
                outcome.error_code = "answer_incomplete"
        if outcome.status == 0:
            outcome.status = 499 if outcome.disconnected else 500
        if outcome.disconnected and not outcome.error_code:
            outcome.error_code = "client_disconnected"
        if 200 <= outcome.status < 300 and outcome.total_tokens is None:
            usage = answer.usage()
            if usage is not None:
                usage.apply(outcome)
        if self.record_prompts:
            outcome.prompt = _text(b"".join(prompt), self.prompt_max)
            outcome.answer = answer.text()
        settling = outcome.settling
        if settling is not None and not settling.done():
            # The record waits for what completes it; the answer has gone already.
            account_once_settled(outcome, settling)
        else:
            account(outcome)

    def _client_address(self, scope: Scope, forwarded: bytes) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        if not forwarded or not self.trusted_proxies or not self._trusted(peer):
            return peer
        # The right-most address that is not one of our proxies is the one a proxy saw.
        for hop in reversed(forwarded.decode("latin-1").split(",")):
            address = hop.strip()
            if address and not self._trusted(address):
                return address[:64]
        return peer

    def _trusted(self, address: str) -> bool:
        known = self._peers.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return False
            known = any(ip in network for network in self.trusted_proxies)
            if len(self._peers) < _MAX_KNOWN_PEERS:
                self._peers[address] = known
        return known


class _Watched:
    """One request's `receive` and `send` as the capture watches them: the bound methods of one
    small object, not two closures and their cells, since they are held as long as the request
    (an open stream's whole life)."""

    __slots__ = ("_receive", "_send", "answer", "outcome", "prompt")

    def __init__(
        self,
        outcome: RequestOutcome,
        answer: _Answer,
        prompt: list[bytes] | None,  # the request body's parts, when prompts are recorded
        receive: Receive,
        send: Send,
    ) -> None:
        self.outcome = outcome
        self.answer = answer
        self.prompt = prompt
        self._receive = receive
        self._send = send

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.outcome.client_gone()
        elif self.prompt is not None and message.get("body"):
            self.prompt.append(message["body"])
        return message

    def send(self, message: Message) -> Awaitable[None]:
        # The next send's awaitable, not a coroutine of its own (api/edge.py says why).
        outcome = self.outcome
        if message["type"] == "http.response.start":
            now = time.perf_counter()
            outcome.status = message["status"]
            headers = list(message.get("headers", ()))
            self.answer.start(headers)
            outcome.stream = outcome.stream or self.answer.event_stream
            headers.append((b"x-request-id", outcome.request_id.encode()))
            headers.append((b"server-timing", outcome.server_timing(now)))
            message["headers"] = headers
        elif message["type"] == "http.response.body":
            self.answer.body(message.get("body", b""))
            if not message.get("more_body", False):
                outcome.ended = time.perf_counter()
        return self._send(message)


class _Answer:
    """What the middleware keeps of the answer: whether it is a stream, the JSON body of a
    non-streamed one (for its usage), and, when prompts are recorded, its start."""

    __slots__ = ("_chunks", "_keep", "_kept", "_size", "event_stream", "json")

    def __init__(self, keep_chars: int) -> None:
        self._chunks: list[bytes] = []
        self._keep = keep_chars
        self._kept: list[bytes] = []
        self._size = 0
        self.event_stream = False
        self.json = False

    def start(self, headers: list[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name == b"content-type":
                self.event_stream = value.startswith(b"text/event-stream")
                self.json = value.startswith(b"application/json")
                break

    def body(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._size += len(chunk)
        if self.json and self._size <= _MAX_USAGE_BODY:
            self._chunks.append(chunk)
        if self._keep and sum(map(len, self._kept)) < self._keep:
            self._kept.append(chunk[: self._keep])

    def usage(self) -> Usage | None:
        if not self.json or not self._chunks or self._size > _MAX_USAGE_BODY:
            return None
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        return usage_in_json(body)

    def text(self) -> str:
        return _text(b"".join(self._kept), self._keep)


def answer_headers(scope: Scope) -> dict[str, str]:
    """The headers the capture adds, for an answer rendered outside it (the 500 of the
    outermost error handling, after the exception went through the capture); {} when the
    request was not captured."""
    outcome: RequestOutcome | None = (scope.get("state") or {}).get("outcome")
    if outcome is None:
        return {}
    return {
        "x-request-id": outcome.request_id,
        "server-timing": outcome.server_timing(time.perf_counter()).decode(),
    }


def _text(data: bytes, limit: int) -> str:
    return data.decode("utf-8", "replace")[:limit]


def _request_headers(scope: Scope) -> tuple[str, bytes]:
    """The client's usable x-request-id ("" when absent or not plain) and X-Forwarded-For."""
    request_id, forwarded = "", b""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                request_id = value.decode()
        elif name == b"x-forwarded-for":
            forwarded = value
    return request_id, forwarded
