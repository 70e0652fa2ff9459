"""pipeline.relay on its own: `[DONE]` only for a whole stream, whatever the endpoint kind and
however the bytes are split; the error event instead of it otherwise, logged once."""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import AsyncIterator, Iterable

import orjson
import pytest

from resource_server_async.accounting.outcome import RequestOutcome
from resource_server_async.auth.principal import Principal
from resource_server_async.clusters.base import ClusterRow
from resource_server_async.clusters.direct_api import DirectAPICluster, DirectAPIClusterConfig
from resource_server_async.endpoints.base import EndpointRow, InferenceRequest
from resource_server_async.endpoints.direct_api import DirectAPIEndpoint, DirectAPIEndpointConfig
from resource_server_async.errors import Dialect, GatewayError
from resource_server_async.inference.pipeline import relay
from resource_server_async.upstream.done_gate import DoneGate


def chunk_event(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    data = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    data["choices"][0]["finish_reason"] = finish  # type: ignore[index]
    return b"data: " + orjson.dumps(data) + b"\n\n"


WHOLE = chunk_event("Hello") + chunk_event(" world") + chunk_event(finish="stop")
DONE = b"data: [DONE]\n\n"


def endpoint() -> DirectAPIEndpoint:
    cluster = DirectAPICluster(
        ClusterRow("c1", "x", ("vllm",), ("chat/completions",)), DirectAPIClusterConfig()
    )
    row = EndpointRow("c1-vllm-m", "c1", "vllm", "M", "x")
    return DirectAPIEndpoint(row, DirectAPIEndpointConfig(api_url="http://127.0.0.1:9"), cluster)


def call(operation: str = "chat/completions") -> InferenceRequest:
    principal = Principal(id="api_key:1", username="t", kind="api_key")  # type: ignore[arg-type]
    return InferenceRequest(operation, {}, b"{}", principal, request_id="req-relay-1")


async def source(
    chunks: Iterable[bytes], error: GatewayError | None = None
) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    if error is not None:
        raise error


async def relayed(
    chunks: Iterable[bytes], error: GatewayError | None = None, operation: str = "chat/completions"
) -> bytes:
    parts = [
        part
        async for part in relay(source(chunks, error), Dialect.OPENAI, endpoint(), call(operation))
    ]
    return b"".join(parts)


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def last_error(output: bytes) -> dict[str, object]:
    events = [event for event in output.split(b"\n\n") if event]
    error: dict[str, object] = orjson.loads(events[-1].removeprefix(b"data: "))["error"]
    return error


@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
async def test_whole_stream_split_anywhere_ends_with_one_done(size: int) -> None:
    output = await relayed(split_every(WHOLE + DONE, size))

    assert output == WHOLE + DONE


async def test_crlf_events_are_framed_too() -> None:
    crlf = (WHOLE + DONE).replace(b"\n", b"\r\n")

    output = await relayed(split_every(crlf, 5))

    assert output == WHOLE.replace(b"\n", b"\r\n") + DONE


async def test_done_without_finish_reason_becomes_the_error_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    partial = chunk_event("Hel") + chunk_event("lo")
    caplog.set_level(logging.WARNING)

    output = await relayed([partial + DONE])

    assert output.startswith(partial)
    assert b"[DONE]" not in output
    assert last_error(output)["code"] == "upstream_stream_interrupted"
    cut = [r for r in caplog.records if "req-relay-1" in r.getMessage()]
    assert len(cut) == 1 and cut[0].levelno == logging.WARNING


async def test_a_compute_stream_terminated_by_the_gateway_is_checked_the_same_way() -> None:
    # Globus Compute streams: the function swallows the server's [DONE] and compute_stream
    # writes its own when the task ends, whether or not the answer was whole.
    output = await relayed([b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n', DONE])

    assert b"[DONE]" not in output
    assert last_error(output)["code"] == "upstream_stream_interrupted"


async def test_error_before_done_is_sent_and_done_is_not() -> None:
    stalled = GatewayError(504, "upstream_timeout", "sent nothing for 5 s")

    output = await relayed([chunk_event("a")], error=stalled)

    assert b"[DONE]" not in output
    assert last_error(output)["code"] == "upstream_timeout"


async def test_failure_after_a_whole_stream_changes_nothing() -> None:
    reset = GatewayError(502, "upstream_stream_interrupted", "connection reset")

    output = await relayed([WHOLE, DONE], error=reset)

    assert output == WHOLE + DONE


async def test_done_inside_content_is_only_content() -> None:
    talk = chunk_event("say data: [DONE] now")

    output = await relayed([talk, WHOLE, DONE])

    assert output == talk + WHOLE + DONE


async def test_finish_reason_split_across_chunks_is_seen() -> None:
    data = WHOLE + DONE
    cut = data.index(b'"finish_reason":"stop"') + 5

    output = await relayed([data[:cut], data[cut:]])

    assert output == WHOLE + DONE


@pytest.mark.parametrize(
    "finish",
    [
        b'"finish_reason": "stop"',  # a server that writes spaces (json.dumps)
        b'"finish_reason" :\t"length"',
        b'"finish_reason":null}, {"index": 1, "finish_reason":"stop"',  # one choice finished
    ],
)
def test_a_finish_reason_however_written_is_seen(finish: bytes) -> None:
    gate = DoneGate()
    gate.feed(b'data: {"choices": [{"index": 0, "finish_reason":null}]}\n\n')
    assert not gate.finished

    gate.feed(b'data: {"choices": [{"index": 0, ' + finish + b"}]}\n\n")

    assert gate.finished


def test_null_finish_reasons_however_written_are_not_a_finish() -> None:
    gate = DoneGate()
    for null in (b'"finish_reason":null', b'"finish_reason": null', b'"finish_reason" : null'):
        gate.feed(b'data: {"choices": [{"index": 0, ' + null + b"}]}\n\n")

    gate.feed(DONE)

    assert gate.done and not gate.finished and not gate.whole


async def test_streams_without_done_are_passed_through_untouched() -> None:
    events = b'event: response.completed\ndata: {"type": "response.completed"}\n\n'

    assert await relayed([events[:10], events[10:]], operation="responses") == events


def test_one_huge_event_is_not_held_whole() -> None:
    gate = DoneGate()
    piece = b"x" * (256 * 1024)
    passed = gate.feed(b'data: {"choices": [{"delta": {"content": "')
    for _ in range(8):  # 2 MiB without a blank line
        passed += gate.feed(piece)

    assert len(passed) >= 1024 * 1024  # what framing may hold is bounded


def test_a_last_done_without_its_blank_line_counts() -> None:
    gate = DoneGate()
    assert gate.feed(WHOLE + b"data: [DONE]") == WHOLE
    gate.end()

    assert gate.whole


class _Body(dict[str, object]):
    """A request body that can be referenced weakly (a plain dict cannot)."""


async def test_an_open_stream_does_not_hold_its_request_body() -> None:
    body = _Body(model="M", messages=[{"role": "user", "content": "a long prompt " * 1000}])
    request = InferenceRequest("chat/completions", body, b"{}", call().principal, "req-held")
    body_alive = weakref.ref(body)
    events = relay(
        source([chunk_event("Hello"), chunk_event(" world")]), Dialect.OPENAI, endpoint(), request
    )

    assert await anext(events) == chunk_event("Hello")  # the stream is open
    del body, request
    gc.collect()
    assert body_alive() is None
    await events.aclose()


async def test_a_hang_up_after_the_last_event_is_not_a_disconnect() -> None:
    # The openai client closes on [DONE] while the relay still drains the server's stream.
    outcome = RequestOutcome(
        "req-last", received_at=0.0, started=0.0, route="cluster", operation="chat/completions"
    )
    request = call()
    request.outcome = outcome
    events = relay(
        source([WHOLE, DONE, b": the server's tail\n\n"]), Dialect.OPENAI, endpoint(), request
    )

    assert await anext(events) == WHOLE
    outcome.client_gone()  # before the last event: the record says the client left
    assert outcome.disconnected
    outcome.disconnected = False
    assert await anext(events) == DONE
    with pytest.raises(StopAsyncIteration):
        await anext(events)
    outcome.client_gone()

    assert outcome.last_event_sent
    assert not outcome.disconnected
