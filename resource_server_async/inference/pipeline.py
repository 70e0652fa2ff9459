"""The shared inference path of every inference route: resolve, authorize, admit, execute.

A view reads the request (`api.request.read_request`, steps 2 and 2b) and hands the
`ParsedRequest` to `run_on` (cluster-scoped) or `routing.serve` (federated). Families that need to
change the request or the answer on the way (Anthropic Messages translated to
chat/completions) use the steps one by one: `resolve` -> `authorize_endpoint` ->
`admission.admit` -> `prepare` -> the endpoint's `complete` or `open_stream` ->
`json_response` / `EventStreamResponse(relay(...))`; admission and what follows are awaited
inside `cancel_on_disconnect` (`admit_then`), since admission may wait in a fair queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from resource_server_async import admission, drain
from resource_server_async.accounting import stream_usage
from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.admission.ticket import AdmissionState
from resource_server_async.auth.permissions import authorize_endpoint
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.projects import ProjectRef
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.chunk_writer import chunk_writer
from resource_server_async.clusters.base import BaseCluster
from resource_server_async.disconnect import ClientWatch
from resource_server_async.endpoints.base import BaseEndpoint, InferenceRequest, UpstreamReply
from resource_server_async.errors import Dialect, GatewayError, sse_error_event
from resource_server_async.inference import sessions
from resource_server_async.inference.visibility import listing, usable_clusters, usable_models
from resource_server_async.upstream import errors as upstream_errors
from resource_server_async.upstream.done_gate import DONE_EVENT, DONE_TERMINATED, DoneGate
from resource_server_async.upstream.stream_reads import StreamReads

logger = logging.getLogger(__name__)

# Operations that answer `stream: true` with server-sent events; others ignore the flag.
STREAMING_OPERATIONS = frozenset({"chat/completions", "completions", "responses", "messages"})


@dataclass(slots=True)
class ParsedRequest:
    """A request that passed authentication, parsing and validation; not yet bound to a model."""

    principal: Principal
    body: dict[str, Any]
    raw: bytes
    model: str
    request_id: str
    stream: bool
    outcome: RequestOutcome | None = None  # the capture's, filled along the way (accounting/)
    operation: str = ""  # the route's operation (admission reads it)
    admission: AdmissionState | None = None  # what admission charged (admission/middleware.py)
    project: ProjectRef | None = None  # charged to (catalog/projects.py), chosen before admit
    headers: Headers | None = None  # the request's (x-priority is read only at a capacity)


def find_cluster(principal: Principal, cluster_name: str, framework: str) -> BaseCluster:
    """The cluster, which must have the framework; 404 naming what the caller may use."""
    cluster = catalog.cluster(cluster_name)
    if cluster is None:
        raise GatewayError(
            404,
            "cluster_not_found",
            f"There is no cluster {cluster_name!r}. Clusters you may use: "
            f"{listing(usable_clusters(principal), 'none')}.",
        )
    if framework not in cluster.row.frameworks:
        raise GatewayError(
            404,
            "framework_not_found",
            f"Cluster {cluster_name!r} has no framework {framework!r}. It has: "
            f"{listing(list(cluster.row.frameworks), 'none')}.",
        )
    return cluster


def resolve(
    principal: Principal, cluster_name: str, framework: str, model: str, operation: str
) -> BaseEndpoint:
    """The endpoint for (cluster, framework, model); whether the principal may use it is
    `authorize_endpoint`'s question. 404 messages list only what this principal may use."""
    cluster = find_cluster(principal, cluster_name, framework)
    if not cluster.serves_operation(operation):
        offered = ", ".join(f"/v1/{op}" for op in cluster.row.openai_endpoints) or "nothing"
        raise GatewayError(
            404,
            "operation_not_offered",
            f"Cluster {cluster_name!r} does not offer /v1/{operation}. It offers: {offered}.",
        )
    endpoint = catalog.lookup(cluster_name, framework, model)
    if endpoint is None:
        raise model_not_found(principal, cluster_name, framework, model)
    return endpoint


def model_not_found(
    principal: Principal, cluster: str, framework: str, model: object
) -> GatewayError:
    """404 for a model the cluster's framework does not serve, naming those the caller may use."""
    models = usable_models(principal, cluster=cluster, framework=framework)
    return GatewayError(
        404,
        "model_not_found",
        f"Model {model!r} is not served by {framework!r} on cluster {cluster!r}. "
        f"Models you may use there: {listing(models, 'none')}.",
        param="model",
    )


def encode_body(body: dict[str, Any]) -> bytes:
    """A request body as JSON bytes that are kept for the whole call (a stream's too).

    orjson writes into a buffer reserved for the worst case and only shortens the bytes'
    length: held, a 100-byte body keeps 4 kB and a 100 kB prompt 1 MB (tracemalloc;
    bench/compute_streams.py found it the largest single allocation per open stream). A copy
    of the exact size costs one memcpy.
    """
    return bytes(memoryview(orjson.dumps(body)))


def prepare(endpoint: BaseEndpoint, operation: str, parsed: ParsedRequest) -> InferenceRequest:
    """The request for this endpoint: `model` becomes the name the server serves (the lookup is
    case-insensitive); when it already is, the client's bytes are sent as they came."""
    body, raw = parsed.body, parsed.raw
    if parsed.model != endpoint.model:
        body = {**body, "model": endpoint.model}
        raw = encode_body(body)
    if sessions.wants_salt(endpoint, operation):
        body = {**body, "cache_salt": sessions.cache_salt(parsed.principal)}
        raw = encode_body(body)
    stream = parsed.stream and operation in STREAMING_OPERATIONS
    plain = None
    if stream and operation in DONE_TERMINATED and _asks_usage(endpoint, body):
        # The stream's usage, for the record: the extra chunk is taken out again (relay).
        plain = (body, raw)
        body = stream_usage.ask_for_usage(body)
        raw = encode_body(body)
    return InferenceRequest(
        operation=operation,
        body=body,
        raw=raw,
        principal=parsed.principal,
        request_id=parsed.request_id,
        stream=stream,
        outcome=parsed.outcome,
        plain=plain,
    )


def _asks_usage(endpoint: BaseEndpoint, body: dict[str, Any]) -> bool:
    return (
        getattr(endpoint.config, "stream_include_usage", True) is not False
        and not stream_usage.client_asked(body)
        and not stream_usage.usage_refusers.known(endpoint.slug)
    )


def _without_usage_option(call: InferenceRequest) -> InferenceRequest:
    assert call.plain is not None
    body, raw = call.plain
    call.body, call.raw, call.plain = body, raw, None
    return call


def _usage_tap(call: InferenceRequest, gated: bool) -> stream_usage.StreamUsage | None:
    if call.outcome is None:
        return None
    # Nobody could ask for usage: the server refused the option or is configured not to get it.
    estimate = gated and call.plain is None and not stream_usage.client_asked(call.body)
    return stream_usage.StreamUsage(
        call.outcome, strip=call.plain is not None, estimate=estimate, prompt_bytes=len(call.raw)
    )


def _looks_like_json_object(body: bytes) -> bool:
    # A full parse of every answer (embeddings can be megabytes) is not worth it; a truncated
    # or non-JSON answer fails this check.
    if body[:1] != b"{":
        body = body.strip()
    return body[:1] == b"{" and body.rstrip()[-1:] == b"}"


def json_response(reply: UpstreamReply, endpoint: BaseEndpoint, call: InferenceRequest) -> Response:
    """The model server's JSON answer as it came, or the caller's error for a failed one."""
    if not 200 <= reply.status < 300:
        error = upstream_errors.reply_error(reply.status, reply.body, endpoint)
        raise upstream_errors.report(error, endpoint, call.request_id)
    if not _looks_like_json_object(reply.body):
        error = upstream_errors.broken(endpoint, "its answer is not a JSON object")
        raise upstream_errors.report(error, endpoint, call.request_id)
    return Response(reply.body, status_code=reply.status, media_type="application/json")


async def relay(
    chunks: AsyncIterator[bytes], dialect: Dialect, endpoint: BaseEndpoint, call: InferenceRequest
) -> AsyncIterator[bytes]:
    """Pass SSE bytes through as they arrive; a failure after the start becomes a final error
    event in the caller's dialect, so the client always sees the stream end.

    Streams that end with `data: [DONE]` (DONE_TERMINATED, from any endpoint kind) get it
    from here, once the stream is known to be whole; clients stop reading at `[DONE]`, so
    an error sent after it would never be read.
    """
    gate = DoneGate() if call.operation in DONE_TERMINATED else None
    tap = _usage_tap(call, gate is not None)
    request_id, outcome = call.request_id, call.outcome
    # The request (its body parsed and encoded, twice when usage was asked for) is not held
    # for the stream's life: with long prompts, the largest part of an open stream.
    del call
    ended = False  # the client has its last event; what the server still sends is drained
    # A model server's stream is read here, not through an iterator: one async generator
    # less to resume per chunk (upstream/stream_reads.py).
    reads = chunks if isinstance(chunks, StreamReads) else None
    try:
        read = reads.start() if reads is not None else chunks.__anext__
        while True:
            try:
                chunk = await read()
            except StopAsyncIteration:
                break
            except Exception as exc:
                if reads is None:
                    raise
                reads.close(False)
                raise reads.failure(exc) from None
            if reads is not None:
                if not chunk:
                    reads.close(True)  # the connection goes back to the pool before the end
                    break
                reads.heard()
            if ended:
                continue
            if gate is not None:
                chunk = gate.feed(chunk)
                # Before the finish reason, the tap has nothing to find (nor to count, unless
                # it estimates): no call per chunk.
                if tap is not None and (gate.finished or tap.estimate):
                    chunk = tap.feed_framed(chunk, gate.finished)
            elif tap is not None:
                tap.feed_raw(chunk)
            if chunk:
                yield chunk
            if gate is not None and gate.done:
                ended = True
                yield _last_event(gate, None, dialect, endpoint, request_id, outcome)
                _sent_last(outcome)
        if gate is not None and not ended:
            ended = True
            gate.end()
            yield _last_event(gate, None, dialect, endpoint, request_id, outcome)
            _sent_last(outcome)
    except GatewayError as exc:
        if not ended:
            yield _last_event(gate, exc, dialect, endpoint, request_id, outcome)
            _sent_last(outcome)
    except Exception:
        if not ended:
            logger.exception("stream from %r failed (request %s)", endpoint, request_id)
            failure = GatewayError(
                502, "stream_failed", "The gateway failed while relaying the stream."
            )
            if outcome is not None:
                outcome.error_code = failure.code
            yield sse_error_event(failure, dialect)
    finally:
        if tap is not None:
            tap.end()
        if reads is not None:
            reads.close(False)  # a stream cut short: the server stops generating
        else:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()


def _sent_last(outcome: RequestOutcome | None) -> None:
    # Resumed after the yield: the response has handed the last event to the server. The
    # relay still drains the model server's stream (its connection goes back to the pool);
    # a client that hangs up meanwhile, as the openai client does after [DONE], had it all.
    if outcome is not None:
        outcome.last_event_sent = True


def _last_event(
    gate: DoneGate | None,
    failure: GatewayError | None,
    dialect: Dialect,
    endpoint: BaseEndpoint,
    request_id: str,
    outcome: RequestOutcome | None,
) -> bytes:
    """`[DONE]` for a whole stream, else the error event (logged once for the operator)."""
    if gate is not None and gate.whole:
        # A failure after the whole answer and its [DONE] (a connection reset) lost nothing.
        return DONE_EVENT
    if failure is None:
        failure = (
            upstream_errors.stream_unfinished(endpoint)
            if gate is not None and gate.done
            else upstream_errors.stream_cut(endpoint)
        )
    upstream_errors.report_cut(failure, endpoint, request_id)
    if outcome is not None:
        outcome.error_code = failure.code
    return sse_error_event(failure, dialect)


# The answer's fixed headers, encoded once, as Starlette would send them (in this order).
_SSE_RAW_HEADERS = (
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    (b"content-type", b"text/event-stream; charset=utf-8"),
)


class EventStreamResponse(Response):
    """SSE passed through unbuffered; a client that disconnects stops the stream at once.

    A Starlette Response by type only (views return it, `mark_served` appends to its
    `raw_headers`): plain ASGI underneath, none of StreamingResponse's per-answer and per-chunk
    work, since each open stream holds its response for minutes. The body chunks are written by
    the server's protocol when it offers to (chunk_writer.py: past every layer's send). The
    disconnect comes from the server's protocol (disconnect.py: no task per stream), and cancels
    the relaying task; closing the iterator makes the endpoint drop its upstream call.
    """

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes], dialect: Dialect = Dialect.OPENAI) -> None:
        self.status_code = 200
        self.raw_headers = list(_SSE_RAW_HEADERS)
        self.background = None
        self._events = events
        self._dialect = dialect
        self._on_close: Callable[[], None] | None = None

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the stream has ended, however it ended."""
        self._on_close = callback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        relaying = asyncio.current_task()
        assert relaying is not None
        outcome: RequestOutcome | None = (scope.get("state") or {}).get("outcome")
        client = ClientWatch(
            scope, receive, relaying, outcome.client_gone if outcome is not None else None
        )
        draining = drain.current()
        draining.track(relaying)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            write = chunk_writer(scope)
            if write is None:
                async for chunk in self._events:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            else:
                # The server writes the chunks itself; the start and the end go through send.
                async for chunk in self._events:
                    if (waiting := write(chunk)) is not None:
                        await waiting
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if draining.was_cut(relaying) and not client.disconnected:
                relaying.uncancel()  # the drain's deadline: tell the client, then end
                await self._send_drain_error(scope, send)
            elif not client.disconnected:
                raise
            else:
                relaying.uncancel()  # our own cancellation, not the server's: end quietly
        finally:
            client.stop()
            draining.untrack(relaying)
            if self._on_close is not None:
                self._on_close()
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _send_drain_error(self, scope: Scope, send: Send) -> None:
        error = GatewayError(
            503,
            "gateway_shutting_down",
            "The gateway is shutting down and ended this stream; retry the request.",
        )
        # The record says why the answer stopped (the relay was cancelled, so it set nothing).
        outcome: RequestOutcome | None = (scope.get("state") or {}).get("outcome")
        if outcome is not None:
            outcome.error_code = error.code
        with contextlib.suppress(OSError, RuntimeError):
            await send(
                {
                    "type": "http.response.body",
                    "body": sse_error_event(error, self._dialect),
                    "more_body": True,
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})


# Never sent (the client is gone); nginx's code for it, should anything log the status.
CLIENT_CLOSED_REQUEST = 499


async def cancel_on_disconnect(request: Request, work: Awaitable[Response]) -> Response:
    """Await `work` (the call to the model, up to its answer or the start of its stream), and
    cancel it if the client hangs up meanwhile: an abandoned call must not hold a pooled
    connection, or the model, until its timeout. Call it once the body has been read
    (disconnect.ClientWatch)."""
    waiting = asyncio.current_task()
    assert waiting is not None
    outcome: RequestOutcome | None = request.scope.get("state", {}).get("outcome")
    client = ClientWatch(
        request.scope,
        request.receive,
        waiting,
        outcome.client_gone if outcome is not None else None,
    )
    try:
        return await work
    except asyncio.CancelledError:
        if not client.disconnected:
            raise
        waiting.uncancel()  # our own cancellation, not the server's
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    finally:
        client.stop()


async def admit_then(
    parsed: ParsedRequest, endpoint: BaseEndpoint, work: Callable[[], Awaitable[Response]]
) -> Response:
    """Admit, then `work()`: awaited inside cancel_on_disconnect, so that a client that hangs
    up while its request waits in the endpoint's fair queue leaves the queue at once."""
    await admission.admit(parsed, endpoint)
    return await work()


async def open_stream(endpoint: BaseEndpoint, call: InferenceRequest) -> AsyncIterator[bytes]:
    """The endpoint's stream; once more without the gateway's `stream_options` if the server
    refuses them (remembered, as a server without /v1/messages is)."""
    try:
        return await endpoint.open_stream(call)
    except GatewayError as error:
        if call.plain is None or not stream_usage.refuses_usage_option(error):
            raise
    logger.info("%r refuses stream_options; its streams' usage is estimated", endpoint)
    stream_usage.usage_refusers.remember(endpoint.slug)
    return await endpoint.open_stream(_without_usage_option(call))


async def execute(endpoint: BaseEndpoint, call: InferenceRequest, dialect: Dialect) -> Response:
    """Run the call on the endpoint. Errors before the answer starts raise GatewayError (the
    caller's HTTP error); errors during a stream end it with an error event."""
    if call.stream:
        return EventStreamResponse(
            relay(await open_stream(endpoint, call), dialect, endpoint, call), dialect
        )
    return json_response(await endpoint.complete(call), endpoint, call)


def mark_served(response: Response, endpoint: BaseEndpoint) -> Response:
    """Say where the answer came from: `x-served-by: <cluster>/<framework>`."""
    response.raw_headers.append((b"x-served-by", endpoint.served_by))
    return response


# Runs a request on one admitted endpoint (prepare + execute, or a family's run).
Runner = Callable[[BaseEndpoint, ParsedRequest], Awaitable[Response]]


async def run_on(
    request: Request, parsed: ParsedRequest, endpoint: BaseEndpoint, run: Runner
) -> Response:
    """A cluster-scoped request on its resolved endpoint: authorize, admit, run, answer."""
    authorize_endpoint(parsed.principal, endpoint)
    # Admitted inside cancel_on_disconnect: a client that hangs up while its request waits in
    # the endpoint's fair queue leaves the queue at once.
    work = admit_then(parsed, endpoint, lambda: run(endpoint, parsed))
    return mark_served(await cancel_on_disconnect(request, work), endpoint)


@functools.cache  # one runner per (operation, dialect), not one per request
def passed_through(operation: str, dialect: Dialect) -> Runner:
    """The runner of an operation the server answers as it is (no translation)."""

    async def run(endpoint: BaseEndpoint, parsed: ParsedRequest) -> Response:
        return await execute(endpoint, prepare(endpoint, operation, parsed), dialect)

    return run
