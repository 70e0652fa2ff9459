"""The cluster-side inference function, called as an endpoint's worker calls it, against real
HTTP servers on loopback: the fake model backend, a scripted model server, and a recording
stand-in for the gateway's side channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from compute_functions.inference import InferenceServerError, inference_function
from tests.compute.conftest import STREAMING_SECRET
from tests.fake_backend import FakeBackend

pytestmark = pytest.mark.usefixtures("function_env")

TOKEN = "1999999999.task-token"


@dataclass
class SideChannel:
    """Records the POSTs; answers `status` to data POSTs after `accept` of them."""

    posts: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    status: int = 200
    accept: int = 1_000_000
    max_bytes: int = 1_000_000  # larger POSTs answer 413, as the gateway's limit does
    refused: int = 0
    posted: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if len(await request.read()) > self.max_bytes:
            self.refused += 1
            return web.json_response({"error": "too large"}, status=413)
        data = await request.json()
        self.posts.append((kind, data, dict(request.headers)))
        self.posted.set()
        data_posts = sum(1 for k, _, _ in self.posts if k == "data")
        if kind == "data" and data_posts > self.accept:
            return web.json_response({"error": "gone"}, status=self.status)
        return web.json_response({"status": "received"})

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.posts]

    def lines(self) -> list[str]:
        return [line for k, d, _ in self.posts if k == "data" for line in d["data"].split("\n")]


@dataclass
class ScriptedServer:
    """A model server whose stream is given byte for byte."""

    body: list[bytes] = field(default_factory=list)
    chunk_delay: float = 0.0
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for piece in self.body:
                await response.write(piece)
                await asyncio.sleep(self.chunk_delay)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture
async def side_channel() -> AsyncIterator[tuple[SideChannel, int]]:
    channel = SideChannel()
    app = web.Application()
    app.router.add_post("/resource_server/api/streaming/{kind}/", channel.handle)
    runner, port = await _serve(app)
    yield channel, port
    await runner.cleanup()


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedServer, int]]:
    server = ScriptedServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.stream)
    app.router.add_get("/health", server.health)
    runner, port = await _serve(app)
    yield server, port
    await runner.cleanup()


def _parameters(port: int, operation: str = "chat/completions", **body: Any) -> dict[str, Any]:
    params = {"model": "fake-model", **body, "openai_endpoint": operation, "api_port": port}
    return {"model_params": params}


def _streaming(port: int, channel_port: int, **body: Any) -> dict[str, Any]:
    parameters = _parameters(port, stream=True, messages=[{"role": "user", "content": "hi"}])
    parameters["model_params"].update(
        body,
        streaming_server_host="127.0.0.1",
        streaming_server_port=channel_port,
        streaming_server_protocol="http",
        stream_task_id="task-1",
        stream_task_token=TOKEN,
    )
    return parameters


def test_complete_returns_the_servers_json_with_timings(backend: FakeBackend) -> None:
    parameters = _parameters(backend.port, messages=[{"role": "user", "content": "plain"}])
    before = json.dumps(parameters)

    answer = json.loads(inference_function(parameters))

    assert answer["choices"][0]["message"]["content"] == "Echo: plain"
    assert answer["response_time"] > 0
    assert "throughput_tokens_per_second" in answer
    assert json.dumps(parameters) == before  # the caller's dict is left as it was
    messages = parameters["model_params"]["messages"]
    assert backend.last.json == {"model": "fake-model", "messages": messages}


def test_server_error_is_raised_in_the_deployed_format(backend: FakeBackend) -> None:
    parameters = _parameters(backend.port, fake={"status": 400})

    with pytest.raises(InferenceServerError) as caught:
        inference_function(parameters)

    assert str(caught.value) == (
        "API request failed with status code: 400\nResponse text: "
        '{"error":{"message":"fake failure with status 400","type":"invalid_request_error",'
        '"param":null,"code":400}}'
    )


def test_missing_parameters_are_named() -> None:
    with pytest.raises(ValueError, match=r"'model_params\.api_port'"):
        inference_function({"model_params": {"openai_endpoint": "chat/completions"}})
    with pytest.raises(ValueError, match="'model_params'"):
        inference_function({})


async def test_health_probe(scripted: tuple[ScriptedServer, int]) -> None:
    _, port = scripted

    answer = await asyncio.to_thread(inference_function, _parameters(port, "health"))

    assert json.loads(answer) == {"status": "ok", "status_code": 200}


async def test_stream_without_done_loses_no_chunk(
    scripted: tuple[ScriptedServer, int], side_channel: tuple[SideChannel, int]
) -> None:
    server, port = scripted
    channel, channel_port = side_channel
    server.body = [
        b'data: {"n": 1}\n\n',
        b'event: message_delta\ndata: {"n": 2}\n\n',
        b'data: {"n": 3, "usage": {"total_tokens": 7}}\n\ndata: {"n"',
        b": 4}",  # the server ends here: no newline, no [DONE]
    ]

    result = json.loads(await asyncio.to_thread(inference_function, _streaming(port, channel_port)))

    assert channel.lines() == [
        'data: {"n": 1}',
        "event: message_delta",
        'data: {"n": 2}',
        'data: {"n": 3, "usage": {"total_tokens": 7}}',
        'data: {"n": 4}',
    ]
    assert channel.kinds()[-1] == "done"
    assert channel.kinds()[0] == "data"  # the first chunk is sent on its own, at once
    _, first, headers = channel.posts[0]
    assert first == {"task_id": "task-1", "data": 'data: {"n": 1}', "type": "data"}
    assert headers["X-Internal-Secret"] == STREAMING_SECRET
    assert headers["X-Stream-Task-Token"] == TOKEN
    assert result["status"] == "completed"
    assert result["total_chunks"] == 5
    assert result["total_tokens"] == 7


async def test_batches_too_large_for_the_gateway_are_sent_in_halves(
    scripted: tuple[ScriptedServer, int], side_channel: tuple[SideChannel, int]
) -> None:
    server, port = scripted
    channel, channel_port = side_channel
    channel.max_bytes = 300
    lines = [f'data: {{"token": "t{i:03d}"}}' for i in range(60)]
    # The first line goes alone; the rest arrive at once and are batched.
    server.body = [
        f"{lines[0]}\n\n".encode(),
        "".join(f"{line}\n\n" for line in lines[1:]).encode(),
    ]

    result = json.loads(await asyncio.to_thread(inference_function, _streaming(port, channel_port)))

    assert channel.lines() == lines
    assert channel.refused > 0
    assert result["status"] == "completed"


async def test_done_marker_is_not_forwarded(
    scripted: tuple[ScriptedServer, int], side_channel: tuple[SideChannel, int]
) -> None:
    server, port = scripted
    channel, channel_port = side_channel
    server.body = [b'data: {"n": 1}\n\n', b"data: [DONE]\n\n"]

    await asyncio.to_thread(inference_function, _streaming(port, channel_port))

    assert channel.lines() == ['data: {"n": 1}']
    assert channel.kinds() == ["data", "done"]


async def test_stream_stops_when_the_gateway_closes_it(
    scripted: tuple[ScriptedServer, int], side_channel: tuple[SideChannel, int]
) -> None:
    server, port = scripted
    channel, channel_port = side_channel
    server.body = [f'data: {{"n": {i}}}\n\n'.encode() for i in range(200)]
    server.chunk_delay = 0.01
    channel.accept, channel.status = 2, 410

    result = json.loads(await asyncio.to_thread(inference_function, _streaming(port, channel_port)))

    assert result["status"] == "cancelled"
    assert "done" not in channel.kinds()
    # The model server's connection was dropped, which stops the generation.
    await asyncio.wait_for(server.disconnected.wait(), 5)


async def test_server_error_on_a_stream_is_reported_to_the_side_channel(
    backend: FakeBackend, side_channel: tuple[SideChannel, int]
) -> None:
    channel, channel_port = side_channel

    with pytest.raises(InferenceServerError):
        await asyncio.to_thread(
            inference_function, _streaming(backend.port, channel_port, fake={"status": 429})
        )

    ((kind, body, _),) = channel.posts
    assert kind == "error"
    assert body["error"].startswith("API request failed with status code: 429\nResponse text: ")


async def test_streaming_needs_the_secret(
    scripted: tuple[ScriptedServer, int],
    side_channel: tuple[SideChannel, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INTERNAL_STREAMING_SECRET")
    _, port = scripted
    channel, channel_port = side_channel

    with pytest.raises(ValueError, match="INTERNAL_STREAMING_SECRET is not set on this endpoint"):
        await asyncio.to_thread(inference_function, _streaming(port, channel_port))
    assert channel.posts == []


@dataclass
class CloseDelimitedServer:
    """A model server that streams SSE with neither Content-Length nor chunking (the body ends
    when it closes the connection), and holds the connection after its first event until the
    test releases it."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    gave_up: bool = False  # the test never released it: it sent the rest on its own

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        )
        writer.write(b'data: {"n": 1}\n\n')
        await writer.drain()
        try:
            await asyncio.wait_for(self.release.wait(), 10)
        except TimeoutError:
            self.gave_up = True
        writer.write(b'data: {"n": 2}\n\ndata: [DONE]\n\n')
        await writer.drain()
        writer.close()


async def test_a_close_delimited_stream_is_relayed_as_it_arrives(
    side_channel: tuple[SideChannel, int],
) -> None:
    channel, channel_port = side_channel
    server = CloseDelimitedServer()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        run = asyncio.ensure_future(
            asyncio.to_thread(inference_function, _streaming(port, channel_port))
        )
        posted = asyncio.ensure_future(channel.posted.wait())
        await asyncio.wait({run, posted}, return_when=asyncio.FIRST_COMPLETED)
        posted.cancel()
        first_lines = channel.lines()
        held_then = not server.gave_up
        server.release.set()
        result = json.loads(await run)
    finally:
        listener.close()
        await listener.wait_closed()

    # The first event reached the gateway while the server still held the body open.
    assert first_lines == ['data: {"n": 1}']
    assert held_then
    assert channel.lines() == ['data: {"n": 1}', 'data: {"n": 2}']
    assert channel.kinds()[-1] == "done"
    assert result["status"] == "completed"


@dataclass
class PausingServer:
    """A model server that sends two events at once, then pauses (a model's hiccup) until the
    test releases it, then ends the stream."""

    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"n": 1}\n\ndata: {"n": 2}\n\n')
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 10)
        await response.write(b'data: {"n": 3}\n\ndata: [DONE]\n\n')
        await response.write_eof()
        return response


async def _lines_posted(channel: SideChannel, count: int, within: float) -> float | None:
    """Seconds until `count` lines had reached the side channel, or None after `within`."""
    started = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - started < within:
        if len(channel.lines()) >= count:
            return asyncio.get_running_loop().time() - started
        await asyncio.sleep(0.005)
    return None


async def _stream_through_a_pause(
    channel: SideChannel, channel_port: int
) -> tuple[float | None, list[str], dict[str, Any]]:
    """The function streams from a PausingServer: the seconds until its first two lines reached
    the side channel (None: not within 5 s of the pause), the lines by then, and its result."""
    server = PausingServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.stream)
    runner, port = await _serve(app)
    try:
        run = asyncio.ensure_future(
            asyncio.to_thread(inference_function, _streaming(port, channel_port))
        )
        waited = await _lines_posted(channel, 2, within=5.0)
        lines_while_paused = channel.lines()
        server.release.set()
        result = json.loads(await run)
    finally:
        await runner.cleanup()
    return waited, lines_while_paused, result


async def test_a_held_back_line_is_sent_when_the_model_pauses(
    side_channel: tuple[SideChannel, int],
) -> None:
    channel, channel_port = side_channel

    # The first line goes alone, the second is held for a batch; the model then says nothing:
    # the second must not wait for the third.
    waited, lines_while_paused, result = await _stream_through_a_pause(channel, channel_port)

    assert waited is not None, "the held line waited for the model's next one"
    assert waited < 1.0  # BATCH_SECONDS is 0.05 s; a slow machine still sends it soon
    assert lines_while_paused == ['data: {"n": 1}', 'data: {"n": 2}']
    assert channel.kinds() == ["data", "data", "data", "done"]
    assert channel.lines() == ['data: {"n": 1}', 'data: {"n": 2}', 'data: {"n": 3}']
    assert result["status"] == "completed"
    assert result["total_chunks"] == 3


async def test_a_stream_closed_while_a_line_is_held_is_cancelled(
    side_channel: tuple[SideChannel, int],
) -> None:
    """The sender's POST meets the gateway's 410: the function stops the generation and does
    not say done, as when the reader's own POST meets it."""
    channel, channel_port = side_channel
    channel.accept, channel.status = 1, 410

    refused, _, result = await _stream_through_a_pause(channel, channel_port)

    assert refused is not None  # the held line was sent, and answered 410
    assert result["status"] == "cancelled"
    assert "done" not in channel.kinds()
