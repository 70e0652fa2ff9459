"""A Globus Compute stream cut by the model server ends with an error event, not `[DONE]`, so
the official client raises instead of returning an empty answer. The gateway runs in this
process (local executor, in-process hub) in front of a model server scripted byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import orjson
import pytest
from aiohttp import web
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async.auth.api_keys import create_key
from resource_server_async.compute.functions import INFERENCE
from tests.compute.catalog import create_hpc_rows
from tests.compute.conftest import STREAMING_SECRET
from tests.compute.inprocess import serve_api
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("function_env")]
ENDPOINT_UUID = "5b1f0c2e-7d3a-4e8b-9a6c-1d2e3f4a5b6c"


def _chunk(content: str | None, finish_reason: str | None) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    body = {"id": "c1", "object": "chat.completion.chunk", "model": "fake-model"}
    return b"data: " + orjson.dumps({**body, "choices": [choice]}) + b"\n\n"


# What the model server sends, by the user message that asks for it.
SCRIPTS = {
    "whole": [_chunk("Hel", None), _chunk("lo", None), _chunk(None, "stop"), b"data: [DONE]\n\n"],
    # llama.cpp aborting a request: [DONE] without the final chunk.
    "done without final chunk": [_chunk("Hel", None), b"data: [DONE]\n\n"],
    "closed without final chunk": [_chunk("Hel", None)],
    "only done": [b"data: [DONE]\n\n"],
}


async def _stream(request: web.Request) -> web.StreamResponse:
    script = SCRIPTS[(await request.json())["messages"][0]["content"]]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for piece in script:
        await response.write(piece)
    await response.write_eof()
    return response


@pytest.fixture
async def model_server() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _stream)
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield int(runner.addresses[0][1])
    await runner.cleanup()


@pytest.fixture
def api_key(transactional_db: None, model_server: int) -> str:
    create_hpc_rows(
        model_server, ENDPOINT_UUID, INFERENCE.local_uuid, ENDPOINT_UUID, ["chat/completions"]
    )
    key, _ = create_key("stream-cut")
    return key


@pytest.fixture
async def client(api_key: str, settings: SettingsWrapper) -> AsyncIterator[openai.AsyncOpenAI]:
    port = free_port()
    settings.COMPUTE_EXECUTOR = "local"
    settings.INTERNAL_STREAMING_SECRET = STREAMING_SECRET
    settings.STREAMING_SERVER_PORT = port
    settings.STREAMING_SERVER_PROTOCOL = "http"
    settings.STREAMING_IDLE_TIMEOUT = 10
    settings.REDIS_URL = ""
    async with serve_api(port) as url:
        yield openai.AsyncOpenAI(
            base_url=f"{url}/resource_server/hpc/vllm/v1",
            api_key=api_key,
            max_retries=0,
            timeout=20,
        )


async def _read(client: openai.AsyncOpenAI, script: str) -> tuple[str, list[str | None]]:
    stream = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": script}], stream=True
    )
    text, reasons = "", []
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            reasons.append(choice.finish_reason)
    return text, reasons


async def test_a_whole_stream_ends_normally(client: openai.AsyncOpenAI) -> None:
    text, reasons = await _read(client, "whole")

    assert text == "Hello"
    assert reasons[-1] == "stop"


@pytest.mark.parametrize("script", ["done without final chunk", "closed without final chunk"])
async def test_a_cut_stream_raises_in_the_client(client: openai.AsyncOpenAI, script: str) -> None:
    with pytest.raises(openai.APIError) as caught:
        await _read(client, script)

    assert caught.value.code == "upstream_stream_interrupted"
    assert "ended before it was complete" in caught.value.message


async def test_a_stream_with_nothing_but_done_is_a_502(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await _read(client, "only done")

    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_stream_interrupted"
