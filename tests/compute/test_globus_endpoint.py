"""GlobusComputeEndpoint with the real globus-compute-sdk against the fake Compute service.

Each task is deserialized and executed by the fake service: the project's inference function
calls the fake model backend over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async.errors import GatewayError
from tests.compute import fake_compute
from tests.compute.conftest import chat_request, make_endpoint
from tests.compute.fake_compute import FakeComputeService
from tests.fake_backend import FakeBackend
from tests.waiting import wait_until_async

pytestmark = pytest.mark.usefixtures("globus_settings", "runtime")


def _submitted_payloads(service: FakeComputeService) -> list[dict]:
    payloads = []
    for call in service.submit_calls:
        for tasks in call["tasks"].values():
            for packed in tasks:
                args, _ = service.arguments(packed)
                payloads.append(args[0])
    return payloads


async def test_success_runs_the_function_on_the_backend(
    service: FakeComputeService, inference_function: str, backend: FakeBackend
) -> None:
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)

    reply = await endpoint.complete(chat_request("hello there", api_port=1, temperature=0.5))

    assert reply.status == 200
    answer = orjson.loads(reply.body)
    assert answer["choices"][0]["message"]["content"] == "Echo: hello there"
    # Timing fields the function adds are not passed on to the client.
    assert "response_time" not in answer and "throughput_tokens_per_second" not in answer
    sent = backend.last.json
    assert backend.last.path == "/v1/chat/completions"
    assert sent["model"] == "fake-model" and sent["temperature"] == 0.5
    # The payload of CONTRACT.md §3: api_port from the config, never from the user.
    (payload,) = _submitted_payloads(service)
    assert payload["model_params"]["api_port"] == backend.port
    assert payload["model_params"]["openai_endpoint"] == "chat/completions"
    assert not {"openai_endpoint", "api_port"} & set(sent)


async def test_inference_server_4xx_keeps_status_and_message(
    service: FakeComputeService, inference_function: str, backend: FakeBackend
) -> None:
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)

    with pytest.raises(GatewayError) as caught:
        await endpoint.complete(chat_request(fake={"status": 422}))

    error = caught.value
    assert error.status == 422
    assert error.message == "fake failure with status 422"
    assert error.info is not None and error.info["cluster"] == "hpc"


async def test_inference_server_5xx_is_502(
    service: FakeComputeService, inference_function: str, backend: FakeBackend
) -> None:
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)

    with pytest.raises(GatewayError) as caught:
        await endpoint.complete(chat_request(fake={"status": 500}))

    assert caught.value.status == 502
    assert caught.value.code == "upstream_error"
    assert "fake failure with status 500" in caught.value.message


async def test_remote_failure_is_502_with_a_short_reason(
    service: FakeComputeService, backend: FakeBackend
) -> None:
    source = "def broken(parameters):\n    return 1 / 0\n"
    endpoint = make_endpoint(
        service.add_endpoint(), service.add_source_function(source, "broken"), backend.port
    )

    with pytest.raises(GatewayError) as caught:
        await endpoint.complete(chat_request())

    error = caught.value
    assert error.status == 502
    assert error.code == "compute_task_failed"
    assert error.message == (
        "The function serving model 'fake-model' on cluster 'hpc' failed: "
        "ZeroDivisionError: division by zero"
    )
    assert "Traceback" not in error.message
    assert error.info is not None and error.info["task_id"] in service.tasks


async def test_pending_then_success(
    service: FakeComputeService, inference_function: str, backend: FakeBackend
) -> None:
    service.polls_before_start = 3
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)

    reply = await endpoint.complete(chat_request("after a wait"))

    assert orjson.loads(reply.body)["choices"][0]["message"]["content"] == "Echo: after a wait"
    assert service.batch_status_calls >= 4


async def test_endpoint_offline_is_503_without_submitting(
    service: FakeComputeService, inference_function: str, backend: FakeBackend
) -> None:
    endpoint = make_endpoint(
        service.add_endpoint(status="offline", managers=0, workers=0),
        inference_function,
        backend.port,
    )

    with pytest.raises(GatewayError) as caught:
        await endpoint.complete(chat_request())

    assert caught.value.status == 503
    assert caught.value.code == "endpoint_offline"
    assert caught.value.message == (
        "The Globus Compute endpoint serving model 'fake-model' on cluster 'hpc' is offline. "
        "Try again later."
    )
    assert service.submit_calls == []


async def test_no_workers_is_503_model_starting_and_wakes_the_endpoint_once(
    service: FakeComputeService,
    inference_function: str,
    backend: FakeBackend,
    settings: SettingsWrapper,
) -> None:
    settings.COMPUTE_STARTING_RETRY_AFTER = 90
    endpoint_id = service.add_endpoint(managers=0, workers=0)
    endpoint = make_endpoint(endpoint_id, inference_function, backend.port)

    for _ in range(2):
        with pytest.raises(GatewayError) as caught:
            await endpoint.complete(chat_request())
        error = caught.value
        assert error.status == 503
        assert error.code == "model_starting"
        assert error.headers == {"Retry-After": "90"}
        assert "is starting" in error.message

    await _wait_for(lambda: len(service.submit_calls) == 1)
    await asyncio.sleep(0.1)
    # One health probe (the contract's probe) queued to make the endpoint start a block.
    (probe,) = _submitted_payloads(service)
    assert probe == {"model_params": {"openai_endpoint": "health", "api_port": backend.port}}


async def test_timeout_is_504_with_the_task_id(
    service: FakeComputeService,
    inference_function: str,
    backend: FakeBackend,
    settings: SettingsWrapper,
) -> None:
    settings.COMPUTE_RESULT_TIMEOUT = 0.3
    endpoint_id = service.add_endpoint()
    service.stuck_endpoints.add(endpoint_id)
    endpoint = make_endpoint(endpoint_id, inference_function, backend.port)

    with pytest.raises(GatewayError) as caught:
        await endpoint.complete(chat_request())

    error = caught.value
    (task_id,) = service.tasks
    assert error.status == 504
    assert error.code == "compute_timeout"
    assert task_id in error.message
    assert error.info == {"cluster": "hpc", "model": "fake-model", "task_id": task_id}


async def test_a_timed_out_request_does_not_disturb_the_others(
    service: FakeComputeService,
    inference_function: str,
    backend: FakeBackend,
    settings: SettingsWrapper,
) -> None:
    settings.COMPUTE_RESULT_TIMEOUT = 0.5
    stuck = service.add_endpoint()
    service.stuck_endpoints.add(stuck)
    slow = make_endpoint(stuck, inference_function, backend.port)
    fine = make_endpoint(service.add_endpoint(), inference_function, backend.port)

    results = await asyncio.gather(
        slow.complete(chat_request()),
        *(fine.complete(chat_request(f"n{i}")) for i in range(3)),
        return_exceptions=True,
    )

    assert isinstance(results[0], GatewayError) and results[0].status == 504
    contents = [orjson.loads(r.body)["choices"][0]["message"]["content"] for r in results[1:]]
    assert contents == ["Echo: n0", "Echo: n1", "Echo: n2"]
    # The same executor keeps working after the timeout.
    settings.COMPUTE_RESULT_TIMEOUT = 5
    reply = await fine.complete(chat_request("again"))
    assert orjson.loads(reply.body)["choices"][0]["message"]["content"] == "Echo: again"


async def test_concurrent_requests_share_submissions_and_polls(
    service: FakeComputeService, inference_function: str, backend: FakeBackend
) -> None:
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)

    replies = await asyncio.gather(*(endpoint.complete(chat_request(f"m{i}")) for i in range(6)))

    contents = [orjson.loads(r.body)["choices"][0]["message"]["content"] for r in replies]
    assert contents == [f"Echo: m{i}" for i in range(6)]
    assert len(service.submit_calls) < 6
    assert service.token_requests == 1  # one client for the credential set, signed in once


async def test_wrong_credentials_are_503_without_the_secret(
    service: FakeComputeService,
    inference_function: str,
    backend: FakeBackend,
    settings: SettingsWrapper,
) -> None:
    settings.SERVICE_ACCOUNT_SECRET = "not-the-secret-" + "x" * 12
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)

    with pytest.raises(GatewayError) as caught:
        await endpoint.complete(chat_request())

    error = caught.value
    assert error.status == 503
    assert error.code == "compute_not_configured"
    assert error.message == (
        "The gateway cannot run model 'fake-model' on cluster 'hpc': Globus Auth refused the "
        f"client credentials {fake_compute.CLIENT_ID} (HTTP 401). Ask the gateway operator."
    )
    assert settings.SERVICE_ACCOUNT_SECRET not in error.message


async def test_missing_credentials_are_503(
    service: FakeComputeService,
    inference_function: str,
    backend: FakeBackend,
    settings: SettingsWrapper,
) -> None:
    settings.SERVICE_ACCOUNT_ID = ""
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)

    with pytest.raises(GatewayError) as caught:
        await endpoint.complete(chat_request())

    assert caught.value.status == 503
    assert caught.value.code == "compute_not_configured"
    assert "SERVICE_ACCOUNT_ID and SERVICE_ACCOUNT_SECRET are not set" in caught.value.message


async def test_per_endpoint_credentials_override(
    service: FakeComputeService,
    inference_function: str,
    backend: FakeBackend,
    settings: SettingsWrapper,
) -> None:
    endpoint_id = service.add_endpoint()
    settings.SERVICE_ACCOUNT_ID = ""
    settings.GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES = {
        endpoint_id: {
            "client_id": fake_compute.CLIENT_ID,
            "client_secret": fake_compute.CLIENT_SECRET,
        }
    }
    endpoint = make_endpoint(endpoint_id, inference_function, backend.port)

    reply = await endpoint.complete(chat_request("with its own identity"))

    assert orjson.loads(reply.body)["choices"][0]["message"]["content"] == (
        "Echo: with its own identity"
    )


async def test_unknown_function_is_503_naming_the_cause(
    service: FakeComputeService, backend: FakeBackend
) -> None:
    endpoint = make_endpoint(
        service.add_endpoint(), "0b3a8a58-45a6-4b55-a8e1-27d7f2b8b001", backend.port
    )

    with pytest.raises(GatewayError) as caught:
        await endpoint.complete(chat_request())

    assert caught.value.status == 503
    assert caught.value.code == "endpoint_unavailable"
    assert "Globus Compute does not know it" in caught.value.message
    assert "function 0b3a8a58-45a6-4b55-a8e1-27d7f2b8b001 not found" in caught.value.message


async def _wait_for(condition: Callable[[], bool]) -> None:
    await wait_until_async(condition)


async def test_endpoint_status_is_cached_not_asked_per_request(
    service: FakeComputeService,
    inference_function: str,
    backend: FakeBackend,
    settings: SettingsWrapper,
) -> None:
    settings.COMPUTE_STATUS_CACHE_SECONDS = 60
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)

    for index in range(3):
        await endpoint.complete(chat_request(f"r{index}"))

    assert service.status_calls == 1
