"""The side channel over HTTP (uvicorn in this process, the in-process hub): a slow reader's
backlog is bounded in bytes, and malformed tokens are refused with 403, never 500. Each test
runs under the gateway's protocol, which answers these POSTs itself
(inference_gateway/direct_answers.py), and under uvicorn's, where the application does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import requests
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async import runtime
from resource_server_async.streaming import LocalStreamHub, issue_token
from tests.compute.conftest import STREAMING_SECRET
from tests.compute.inprocess import GATEWAY_PROTOCOL, serve_api

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]
BACKLOG_BYTES = 3 * 1024 * 1024
POST_TEXT = "x" * (1024 * 1024 - 200)  # each post just under STREAMING_MAX_BODY_BYTES


@pytest.fixture(params=[GATEWAY_PROTOCOL, "httptools"], ids=["direct", "asgi"])
async def gateway(settings: SettingsWrapper, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    settings.INTERNAL_STREAMING_SECRET = STREAMING_SECRET
    settings.REDIS_URL = ""
    settings.STREAMING_MAX_BODY_BYTES = 1024 * 1024
    settings.STREAMING_BACKLOG = 2000
    settings.STREAMING_BACKLOG_BYTES = BACKLOG_BYTES
    async with serve_api(http=request.param) as url:
        yield url


def _post_data(url: str, task_id: str, token: str | bytes, text: str) -> requests.Response:
    # requests sends header values as Latin-1 bytes, as a client with raw bytes would.
    return requests.post(
        f"{url}/resource_server/api/streaming/data/",
        json={"task_id": task_id, "data": text, "type": "data"},
        headers={"X-Internal-Secret": STREAMING_SECRET, "X-Stream-Task-Token": token},
        timeout=10,
    )


async def test_posts_beyond_the_byte_backlog_answer_503_and_hold_no_more(gateway: str) -> None:
    hub = runtime.current.hub
    assert isinstance(hub, LocalStreamHub)
    subscription = await hub.open("slow-reader", lifetime=60)
    token = issue_token("slow-reader", 60)
    statuses: list[int] = []
    held: list[int] = []

    # A token holder floods a reader that reads nothing.
    for _ in range(8):
        response = await asyncio.to_thread(_post_data, gateway, "slow-reader", token, POST_TEXT)
        statuses.append(response.status_code)
        held.append(hub.streams["slow-reader"].held_bytes)
    refused = await asyncio.to_thread(_post_data, gateway, "slow-reader", token, POST_TEXT)

    assert statuses == [200] * 3 + [503] * 5
    assert max(held) <= BACKLOG_BYTES
    assert refused.json()["error"]["code"] == "stream_backlog_full"
    assert refused.headers["Retry-After"] == "1"
    # Once the reader takes what waits, posts are taken again.
    for _ in range(3):
        assert await subscription.next(1) is not None
    accepted = await asyncio.to_thread(_post_data, gateway, "slow-reader", token, POST_TEXT)
    assert accepted.status_code == 200
    await subscription.close()


@pytest.mark.parametrize("token", [b"\xb2.x", b"\xb2\xb2.abc", "\u0661.x".encode()])
async def test_a_token_with_non_ascii_digits_is_refused_with_403(
    gateway: str, token: bytes
) -> None:
    hub = runtime.current.hub
    await hub.open("task-t", lifetime=60)

    response = await asyncio.to_thread(_post_data, gateway, "task-t", token, "data: {}")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_stream_token"


def _post_done(url: str, task_id: str, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        f"{url}/resource_server/api/streaming/done/",
        json={"task_id": task_id, "type": "done"},
        headers={"X-Internal-Secret": STREAMING_SECRET, **headers},
        timeout=10,
    )


async def test_the_side_channel_keeps_the_edge_checks_and_answers_other_methods_405(
    gateway: str,
) -> None:
    await runtime.current.hub.open("task-e", lifetime=60)
    token = issue_token("task-e", 60)

    done = await asyncio.to_thread(_post_done, gateway, "task-e", {"X-Stream-Task-Token": token})
    wrong_host = await asyncio.to_thread(
        _post_done, gateway, "task-e", {"X-Stream-Task-Token": token, "Host": "evil.example"}
    )
    get = await asyncio.to_thread(
        requests.get, f"{gateway}/resource_server/api/streaming/data/", timeout=10
    )

    assert done.status_code == 200
    assert done.json() == {"status": "ok", "task_id": "task-e"}
    assert done.headers["x-content-type-options"] == "nosniff"
    assert wrong_host.status_code == 400
    assert get.status_code == 405
    assert get.json()["error"]["code"] == "method_not_allowed"


async def test_a_gateway_without_the_secret_answers_503_with_retry_after(
    gateway: str, settings: SettingsWrapper
) -> None:
    settings.INTERNAL_STREAMING_SECRET = ""

    answer = await asyncio.to_thread(_post_data, gateway, "task-s", "1.x", "data: {}")

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "streaming_not_configured"
    assert answer.headers["Retry-After"] == "30"
    assert answer.headers["content-type"] == "application/json"
