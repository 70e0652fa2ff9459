"""A direct server's stream read by the relay itself (upstream/stream_reads.py), against a real
socket: chunks in order, the connection back to the pool after a whole stream and dropped after
one cut short, a silence or a cut as the caller's error; and the same as an async iterator, as
the translating layers read it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

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
from resource_server_async.runtime import Runtime
from resource_server_async.upstream.stream_reads import StreamReads

DONE = b"data: [DONE]\n\n"


def chunk_event(content: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    return b"data: " + orjson.dumps({"choices": [choice]}) + b"\n\n"


WHOLE = [chunk_event("a"), chunk_event("b"), chunk_event("", "stop"), DONE]


@dataclass
class ModelServer:
    """Answers each POST on a kept-alive connection with a chunked event stream: `events`,
    one per `delay`, then the end, or (`stall`) nothing more after the first, or (`cut`) the
    connection closed after the first."""

    events: list[bytes] = field(default_factory=lambda: list(WHOLE))
    delay: float = 0.0
    stall: bool = False
    cut: bool = False
    connections: int = 0
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await self._answer(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.hung_up.set()
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for number, event in enumerate(self.events):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            if number == 0 and self.cut:
                return False
            if number == 0 and self.stall:
                await reader.read()  # until the gateway hangs up
                return False
            await asyncio.sleep(self.delay)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


@contextlib.asynccontextmanager
async def listening(server: ModelServer) -> AsyncIterator[str]:
    listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()


def endpoint(origin: str, timeout: float = 30.0) -> DirectAPIEndpoint:
    cluster = DirectAPICluster(
        ClusterRow("c1", "x", ("vllm",), ("chat/completions",)), DirectAPIClusterConfig()
    )
    row = EndpointRow("c1-vllm-m", "c1", "vllm", "M", "x")
    config = DirectAPIEndpointConfig(api_url=origin, api_request_timeout=timeout)
    return DirectAPIEndpoint(row, config, cluster)


def call(outcome: RequestOutcome | None = None) -> InferenceRequest:
    principal = Principal(id="api_key:1", username="t", kind="api_key")
    return InferenceRequest(
        "chat/completions", {}, b"{}", principal, request_id="req-reads-1", outcome=outcome
    )


async def relayed(model: DirectAPIEndpoint, request: InferenceRequest) -> bytes:
    chunks = await model.open_stream(request)
    assert isinstance(chunks, StreamReads)
    events = relay(chunks, Dialect.OPENAI, model, request)
    return b"".join([event async for event in events])


def error_code(output: bytes) -> str:
    last = output.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    code: str = orjson.loads(last.removeprefix(b"data: "))["error"]["code"]
    return code


async def test_whole_streams_are_relayed_over_one_pooled_connection(runtime: Runtime) -> None:
    server = ModelServer()
    async with listening(server) as origin:
        model = endpoint(origin)
        outcome = RequestOutcome(
            "req-reads-1",
            received_at=0.0,
            started=0.0,
            route="cluster",
            operation="chat/completions",
        )
        first = await relayed(model, call(outcome))
        second = await relayed(model, call())

    assert first == second == b"".join(WHOLE)
    assert server.connections == 1  # released whole, the connection went back to the pool
    assert outcome.first_byte is not None


async def test_a_stream_cut_short_by_its_reader_drops_the_connection(runtime: Runtime) -> None:
    server = ModelServer(events=[chunk_event(str(n)) for n in range(100)], delay=0.05)
    async with listening(server) as origin:
        model = endpoint(origin)
        events = relay(await model.open_stream(call()), Dialect.OPENAI, model, call())
        assert isinstance(events, AsyncGenerator)
        assert await anext(events) == chunk_event("0")
        await events.aclose()  # the client went away
        async with asyncio.timeout(5):
            await server.hung_up.wait()  # the model server learns to stop generating


async def test_a_silent_stream_ends_with_the_timeout_event(runtime: Runtime) -> None:
    server = ModelServer(stall=True)
    async with listening(server) as origin:
        async with asyncio.timeout(5):
            output = await relayed(endpoint(origin, timeout=0.3), call())
        await server.hung_up.wait()

    assert output.startswith(chunk_event("a"))
    assert error_code(output) == "upstream_timeout"


async def test_a_connection_cut_mid_stream_ends_with_the_interrupted_event(
    runtime: Runtime,
) -> None:
    async with listening(ModelServer(cut=True)) as origin:
        output = await relayed(endpoint(origin), call())

    assert output.startswith(chunk_event("a"))
    assert error_code(output) == "upstream_stream_interrupted"


async def test_iterated_it_gives_the_same_chunks_and_errors(runtime: Runtime) -> None:
    server = ModelServer()
    async with listening(server) as origin:
        model = endpoint(origin)
        chunks = [chunk async for chunk in await model.open_stream(call())]
        assert b"".join(chunks) == b"".join(WHOLE)
        assert [chunk async for chunk in await model.open_stream(call())] == chunks
    assert server.connections == 1

    async with listening(ModelServer(stall=True)) as origin:
        stream = await endpoint(origin, timeout=0.3).open_stream(call())
        assert await anext(stream) == chunk_event("a")
        with pytest.raises(GatewayError) as caught:
            await anext(stream)
    assert caught.value.code == "upstream_timeout"
