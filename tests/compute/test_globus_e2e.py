"""End to end on the Globus Compute path: the official openai client, the gateway's real HTTP
API (in this process, so that the test changes the fake Compute service's state), the real SDK, the
inference function executed by the fake service, the fake model backend, and for streams the
side channel back into the gateway.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async.auth.api_keys import create_key
from resource_server_async.compute.functions import PBS_STATUS
from tests.compute.catalog import create_hpc_rows
from tests.compute.fake_compute import FakeComputeService
from tests.compute.inprocess import serve_api
from tests.compute.scheduler import FakePBS
from tests.fake_backend import FakeBackend
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("globus_settings")]


@pytest.fixture
def catalog_rows(
    transactional_db: None,
    service: FakeComputeService,
    inference_function: str,
    backend: FakeBackend,
) -> dict[str, Any]:
    endpoint_id = service.add_endpoint()
    status_function = service.add_source_function(PBS_STATUS.source(), PBS_STATUS.entry_point)
    create_hpc_rows(
        backend.port,
        endpoint_id,
        inference_function,
        status_function,
        ["chat/completions", "completions"],
    )
    key, _ = create_key("globus-e2e")
    return {"key": key, "endpoint_id": endpoint_id}


@pytest.fixture
async def gateway(
    catalog_rows: dict[str, Any], settings: SettingsWrapper
) -> AsyncIterator[openai.AsyncOpenAI]:
    port = free_port()
    settings.STREAMING_SERVER_HOST = "127.0.0.1"
    settings.STREAMING_SERVER_PORT = port
    settings.STREAMING_SERVER_PROTOCOL = "http"
    async with serve_api(port) as url:
        catalog_rows["url"] = url
        yield openai.AsyncOpenAI(
            base_url=f"{url}/resource_server/hpc/vllm/v1",
            api_key=catalog_rows["key"],
            max_retries=0,
            timeout=20,
        )


async def test_chat_completion(gateway: openai.AsyncOpenAI, backend: FakeBackend) -> None:
    answer = await gateway.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "via globus"}]
    )

    assert answer.choices[0].message.content == "Echo: via globus"
    assert backend.last.json["model"] == "fake-model"


async def test_streaming_through_the_side_channel(
    gateway: openai.AsyncOpenAI, backend: FakeBackend
) -> None:
    stream = await gateway.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "one two three four"}],
        stream=True,
        extra_body={"fake": {"chunks": 12}},
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]

    text = "".join(pieces)
    assert text.startswith("Echo: one two three four")
    assert len([p for p in pieces if p]) >= 12
    # The function took the stream target from the gateway, not from the client's body.
    assert "stream_task_token" not in backend.last.json


async def test_a_streaming_task_is_not_polled_for_while_its_chunks_flow(
    gateway: openai.AsyncOpenAI, service: FakeComputeService
) -> None:
    chunks = 60  # 30 ms apart: polled all along (every 20 ms), the task is asked 20-60 times
    stream = await gateway.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "a long answer"}],
        stream=True,
        extra_body={"fake": {"chunks": chunks, "chunk_delay": 0.03}},
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]

    assert len([p for p in pieces if p]) >= chunks
    (task,) = [
        task
        for task in service.tasks.values()
        if "stream_task_id" in service.arguments(task.payload)[0][0]["model_params"]
    ]
    # Asked before its first chunk and once its stream ended, not in between.
    assert task.polls < chunks / 8, task.polls


async def test_inference_server_error_before_the_stream_is_the_http_error(
    gateway: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await gateway.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_body={"fake": {"status": 422}},
        )

    assert caught.value.status_code == 422
    assert caught.value.body["message"] == "fake failure with status 422"


async def test_endpoint_offline(
    gateway: openai.AsyncOpenAI, service: FakeComputeService, catalog_rows: dict[str, Any]
) -> None:
    service.set_endpoint(catalog_rows["endpoint_id"], "offline", 0, 0)

    with pytest.raises(openai.APIStatusError) as caught:
        await gateway.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "x"}]
        )

    assert caught.value.status_code == 503
    assert caught.value.response.headers["Retry-After"] == "30"
    assert caught.value.body["code"] == "endpoint_offline"
    assert caught.value.body["message"] == (
        "The Globus Compute endpoint serving model 'fake-model' on cluster 'hpc' is offline. "
        "Try again later."
    )


async def test_jobs_report_a_model_whose_endpoint_has_no_workers_as_not_ready(
    gateway: openai.AsyncOpenAI,
    service: FakeComputeService,
    catalog_rows: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pbs = FakePBS(tmp_path, "hpc", ["fake-model"])
    # The status function runs in this process (the fake service executes it) on the fake PBS.
    monkeypatch.setenv("PATH", f"{pbs.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("USER", "svc_inference")
    headers = {"Authorization": f"Bearer {catalog_rows['key']}"}
    url = f"{catalog_rows['url']}/resource_server/hpc/jobs"

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        async with http.get(url, headers=headers) as response:
            assert response.status == 200, await response.text()
            ready = await response.json()
        service.set_endpoint(catalog_rows["endpoint_id"], "online", 0, 0)
        async with http.get(url, headers=headers) as response:
            not_ready = await response.json()

    (job,) = ready["running"]
    assert (job["Models"], job["Model Status"]) == ("fake-model", "running")
    (job,) = not_ready["running"]
    assert (job["Models"], job["Model Status"]) == ("fake-model", "disconnected")
    assert pbs.qselect_calls == 1  # the job list itself came from the cache
