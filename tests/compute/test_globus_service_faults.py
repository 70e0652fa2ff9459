"""The Globus Compute executor when the Compute service misbehaves, with the real SDKs against
the fake service: no transport retries, refusals fail the waiters at once, and a hung endpoint
does not hold up the others' calls."""

from __future__ import annotations

import asyncio

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async.errors import GatewayError
from tests.compute.conftest import chat_request, make_endpoint
from tests.compute.fake_compute import FakeComputeService
from tests.fake_backend import FakeBackend

pytestmark = pytest.mark.usefixtures("globus_settings", "runtime")


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_failing_submission_is_sent_once_not_retried(
    service: FakeComputeService, inference_function: str, backend: FakeBackend, status: int
) -> None:
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)
    service.submit_fault = status

    with pytest.raises(GatewayError) as caught:
        await endpoint.complete(chat_request())

    # The SDK's default transport would send it again, with back-off, up to five more times.
    assert len(service.submit_calls) == 1
    assert caught.value.status == 502
    assert caught.value.code == "compute_service_error"


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_result_call_fails_the_waiters_at_once(
    service: FakeComputeService,
    inference_function: str,
    backend: FakeBackend,
    globus_settings: SettingsWrapper,
    status: int,
) -> None:
    globus_settings.COMPUTE_RESULT_TIMEOUT = 60.0
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)
    service.polls_before_start = 10**6  # the tasks never finish: only the refusal ends the wait
    service.batch_status_fault = status

    outcomes = await asyncio.gather(
        *(endpoint.complete(chat_request(f"n{i}")) for i in range(3)), return_exceptions=True
    )

    # Not a 504 after COMPUTE_RESULT_TIMEOUT: every waiter gets the refusal.
    assert [(e.status, e.code) for e in outcomes if isinstance(e, GatewayError)] == [
        (502, "compute_service_refused")
    ] * 3
    assert all(str(status) in e.message for e in outcomes if isinstance(e, GatewayError))
    # Asked once per poll, not retried by the transport: a handful of calls at most.
    assert service.batch_status_calls <= 3
    # Once the service takes calls again, requests are served; after a 401 (the token was
    # refused) the gateway signed in anew, after a 403 (no rights) its token was fine.
    service.batch_status_fault = None
    service.polls_before_start = 0
    reply = await endpoint.complete(chat_request("again"))
    assert reply.status == 200
    assert service.token_requests == {401: 2, 403: 1}[status]


async def test_a_refused_submission_fails_at_once(
    service: FakeComputeService, inference_function: str, backend: FakeBackend
) -> None:
    endpoint = make_endpoint(service.add_endpoint(), inference_function, backend.port)
    service.submit_fault = 403

    with pytest.raises(GatewayError) as caught:
        await endpoint.complete(chat_request())

    assert (caught.value.status, caught.value.code) == (502, "compute_service_refused")
    assert len(service.submit_calls) == 1


async def test_a_hung_endpoint_does_not_hold_up_another_endpoints_calls(
    service: FakeComputeService,
    inference_function: str,
    backend: FakeBackend,
    globus_settings: SettingsWrapper,
) -> None:
    # Waits longer than the hang, so that only the executor's design lets the fast call past.
    globus_settings.COMPUTE_SERVICE_TIMEOUT = 30.0
    globus_settings.COMPUTE_RESULT_TIMEOUT = 60.0
    globus_settings.COMPUTE_SDK_THREADS = 4
    globus_settings.COMPUTE_SDK_THREADS_PER_ENDPOINT = 2
    hung_uuid = service.add_endpoint()
    service.hung_endpoints.add(hung_uuid)
    hung = make_endpoint(hung_uuid, inference_function, backend.port, cluster="hung")
    fast = make_endpoint(service.add_endpoint(), inference_function, backend.port)

    stuck = [asyncio.ensure_future(hung.complete(chat_request(f"s{i}"))) for i in range(6)]
    assert await asyncio.to_thread(service.holding.wait, 10)
    reply = await fast.complete(chat_request("still served"))
    hanging_meanwhile = not service.gave_up and not any(task.done() for task in stuck)
    service.release.set()
    replies = await asyncio.gather(*stuck)

    assert reply.status == 200
    # The fast endpoint's answer came while the hung endpoint's submission still hung.
    assert hanging_meanwhile
    assert service.held_most <= 2
    assert [r.status for r in replies] == [200] * 6
