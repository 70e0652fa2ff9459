"""When Redis (the stream hub) is unreachable: streams are refused with 503 at once, chunk POSTs
answer 503 so the function may retry, and requests without `stream` still work."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async.auth.api_keys import create_key
from resource_server_async.compute.functions import INFERENCE
from resource_server_async.streaming import issue_token
from tests.compute.catalog import create_hpc_rows
from tests.compute.conftest import STREAMING_SECRET
from tests.compute.inprocess import serve_api
from tests.fake_backend import FakeBackend
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("function_env")]
ENDPOINT_UUID = "8a3e5d1c-2b4f-4a6e-9c8d-7f6e5d4c3b2a"


@pytest.fixture
def rows(transactional_db: None, backend: FakeBackend) -> str:
    create_hpc_rows(
        backend.port, ENDPOINT_UUID, INFERENCE.local_uuid, ENDPOINT_UUID, ["chat/completions"]
    )
    key, _ = create_key("outage")
    return key


@pytest.fixture
async def gateway(rows: str, settings: SettingsWrapper) -> AsyncIterator[tuple[str, str]]:
    port = free_port()
    settings.COMPUTE_EXECUTOR = "local"
    settings.INTERNAL_STREAMING_SECRET = STREAMING_SECRET
    settings.STREAMING_SERVER_PORT = port
    settings.STREAMING_SERVER_PROTOCOL = "http"
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    async with serve_api(port) as url:
        yield url, rows


async def test_a_stream_is_refused_and_a_plain_request_still_works(
    gateway: tuple[str, str],
) -> None:
    url, key = gateway
    client = openai.AsyncOpenAI(
        base_url=f"{url}/resource_server/hpc/vllm/v1", api_key=key, max_retries=0, timeout=20
    )
    messages = [{"role": "user", "content": "x"}]

    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="fake-model", messages=messages, stream=True)
    answer = await client.chat.completions.create(model="fake-model", messages=messages)

    assert caught.value.status_code == 503
    assert caught.value.body == {
        "message": "The gateway cannot relay streams right now. Try again, or send the request "
        "without stream.",
        "type": "api_error",
        "param": None,
        "code": "stream_hub_unavailable",
    }
    assert answer.choices[0].message.content == "Echo: x"


async def test_chunk_posts_answer_503_with_retry_after(gateway: tuple[str, str]) -> None:
    url, _ = gateway
    headers = {
        "X-Internal-Secret": STREAMING_SECRET,
        "X-Stream-Task-Token": issue_token("task-x", 60),
    }

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/resource_server/api/streaming/data/",
            json={"task_id": "task-x", "data": "data: {}", "type": "data"},
            headers=headers,
        ) as response,
    ):
        body = await response.json()

    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert body["error"]["code"] == "stream_hub_unavailable"
