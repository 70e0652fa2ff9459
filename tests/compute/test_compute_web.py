"""The executor's submissions and status polls on the event loop (compute/web.py) against the
Compute stand-in in its own process (bench/compute_standin.py): the request the SDK would send,
the SDK's errors for 4xx/5xx, unreachable service and timeouts, and the token renewed in a
thread near its expiry, once for all the calls that need it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import globus_sdk
import orjson
import pytest
import requests

from bench import compute_standin
from resource_server_async.auth.globus_api import no_retries
from resource_server_async.compute import once
from resource_server_async.compute.base import (
    ComputeError,
    ComputeRefused,
    ComputeServiceError,
    EndpointUnavailable,
    ResultTooLarge,
)
from resource_server_async.compute.globus import (
    ComputeSession,
    Credentials,
    EndpointSlots,
    ExecutorSettings,
    _service_error,
)
from resource_server_async.compute.pulse import StreamPulse
from resource_server_async.compute.web import (
    AnswerTooLarge,
    ComputeWeb,
    ServiceAddress,
    current_header,
)
from resource_server_async.endpoints.compute_outcomes import compute_error
from tests.compute import fake_compute
from tests.compute.conftest import make_endpoint
from tests.compute.fake_compute import FakeComputeService
from tests.compute.standin import running_standin
from tests.servers import free_port

ENDPOINT = str(uuid.uuid4())
DOUBLE = "def double(x):\n    return 2 * x\n"
# What the SDK's transport sends that the service may read (requests adds its own plumbing).
SHAPE_HEADERS = ("accept", "user-agent", "x-globus-client-info", "content-type", "authorization")


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("standin-web") / "standin.log"
    with running_standin(log, [ENDPOINT], dict(os.environ)) as url:
        yield url


def fault(standin: str, **body: Any) -> None:
    """The next calls of body["route"] fail (status) or wait (delay): see the stand-in."""
    requests.post(f"{standin}/standin/fault", json=body, timeout=5).raise_for_status()


def counts(standin: str) -> dict[str, int]:
    return requests.get(f"{standin}/standin/health", timeout=5).json()["counts"]


def last_sent(standin: str, route: str) -> dict[str, Any]:
    answer = requests.get(f"{standin}/standin/last/{route}", timeout=5)
    answer.raise_for_status()
    return answer.json()


@pytest.fixture(scope="module")
def double_function(standin: str) -> str:
    """A function registered as `register_source_code` does (through the SDK's own call)."""
    token = requests.post(
        f"{standin}/v2/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(compute_standin.CLIENT_ID, compute_standin.CLIENT_SECRET),
        timeout=5,
    ).json()["access_token"]
    answer = requests.post(
        f"{standin}/v3/functions",
        json={"function_code": DOUBLE, "function_name": "double", "serialized": False},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    return str(answer.json()["function_uuid"])


@pytest.fixture
def pointed(standin: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The SDKs sent to the stand-in."""
    for name, value in compute_standin.gateway_env(standin).items():
        if name.startswith("GLOBUS_SDK_"):
            monkeypatch.setenv(name, value)
    return standin


def settings(**changes: Any) -> ExecutorSettings:
    base = ExecutorSettings(
        compute_standin.CLIENT_ID,
        compute_standin.CLIENT_SECRET,
        poll_interval=0.02,
        service_timeout=5.0,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
async def make_session() -> AsyncIterator[Any]:
    threads = ThreadPoolExecutor(2)
    sessions: list[ComputeSession] = []

    def build(**changes: Any) -> ComputeSession:
        config = settings(**changes)
        credentials = Credentials(config.service_account_id, config.service_account_secret)
        session = ComputeSession(credentials, threads, EndpointSlots(2), config)
        sessions.append(session)
        return session

    yield build
    for session in sessions:
        await session.close()
    threads.shutdown(wait=True)


async def test_a_task_is_submitted_and_its_result_read_on_the_loop(
    pointed: str, double_function: str, make_session: Any
) -> None:
    session = make_session()
    before = counts(pointed)

    task_id = await session.submit(ENDPOINT, double_function, (21,))
    assert await session.result(task_id) == 42

    after = counts(pointed)
    assert after["submit"] == before.get("submit", 0) + 1
    assert after["batch_status"] > before.get("batch_status", 0)


async def test_the_calls_send_what_the_sdk_sends(
    pointed: str, double_function: str, make_session: Any
) -> None:
    session = make_session()
    clients = await session.clients()
    batch = once.new_batch(clients.sdk.fx_serializer, clients.runtime)
    batch.add(double_function, (1,))
    document = batch.prepare()
    sdk_v3 = globus_sdk.ComputeClientV3(
        base_url=pointed,
        authorizer=clients.authorizer,
        transport=once.pinned_transport(pointed, 5.0),
    )

    def shape(route: str) -> tuple[dict[str, str], Any]:
        sent = last_sent(pointed, route)
        headers = {k.lower(): v for k, v in sent["headers"].items()}
        return {name: headers.get(name, "") for name in SHAPE_HEADERS}, orjson.loads(sent["body"])

    answer = await asyncio.to_thread(sdk_v3.submit, ENDPOINT, document)
    by_sdk = shape("submit")
    task_id = answer.data["tasks"][double_function][0]
    authorization = await session._authorization(clients)
    await session._web.submit(clients.address, authorization, ENDPOINT, document)
    assert shape("submit") == by_sdk
    assert by_sdk[0]["x-globus-client-info"].startswith("product=python-sdk")

    await asyncio.to_thread(clients.v2.get_task_batch, [task_id])
    by_sdk = shape("batch_status")
    await session._web.batch_status(clients.address, authorization, [task_id])
    assert shape("batch_status") == by_sdk


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, EndpointUnavailable),
        (401, ComputeRefused),
        (403, ComputeRefused),
        (429, ComputeServiceError),
        (500, ComputeServiceError),
        (503, ComputeServiceError),
    ],
)
async def test_a_refused_submission_is_the_error_the_sdk_call_made(
    pointed: str, double_function: str, make_session: Any, status: int, kind: type
) -> None:
    session = make_session()
    clients = await session.clients()
    doing = f"submit to endpoint {ENDPOINT}"
    batch = once.new_batch(clients.sdk.fx_serializer, clients.runtime)
    batch.add(double_function, (1,))
    sdk_v3 = globus_sdk.ComputeClientV3(
        base_url=pointed,
        authorizer=clients.authorizer,
        transport=once.pinned_transport(pointed, 5),
        retry_config=no_retries(),
    )
    fault(pointed, route="submit", status=status, count=2)
    with pytest.raises(globus_sdk.GlobusAPIError) as by_sdk:
        await asyncio.to_thread(sdk_v3.submit, ENDPOINT, batch.prepare())
    expected = _service_error(by_sdk.value, doing)

    with pytest.raises(ComputeError) as caught:
        await session.submit(ENDPOINT, double_function, (1,))

    assert type(caught.value) is type(expected) is kind
    assert str(caught.value) == str(expected)
    assert f"injected {status} on submit" in str(caught.value)
    if isinstance(expected, ComputeRefused):
        assert isinstance(caught.value, ComputeRefused)
        assert caught.value.http_status == status


async def test_a_failing_status_call_is_a_service_error(
    pointed: str, double_function: str, make_session: Any
) -> None:
    session = make_session()
    clients = await session.clients()
    task_id = await session.submit(ENDPOINT, double_function, (2,))
    fault(pointed, route="batch_status", status=502)

    with pytest.raises(ComputeServiceError, match="read task results: Globus Compute answered 502"):
        await session._on_loop("read task results", session._read_results(clients, [task_id]))
    # The poller carries on: the next poll reads the result.
    assert await session.result(task_id) == 4


async def test_a_slow_service_times_out_and_an_unreachable_one_is_named(
    pointed: str, double_function: str, make_session: Any
) -> None:
    session = make_session(service_timeout=0.3)
    fault(pointed, route="submit", delay=2.0)

    with pytest.raises(ComputeServiceError, match=r"did not answer within 0\.3s"):
        await session.submit(ENDPOINT, double_function, (1,))

    clients = await session.clients()
    gone = dataclasses.replace(
        clients,
        address=dataclasses.replace(clients.address, base_url=f"http://127.0.0.1:{free_port()}"),
    )
    with pytest.raises(ComputeServiceError, match=r"cannot reach Globus Compute \(GlobusConn"):
        await session._on_loop(
            "submit", session._submit_batch(gone, ENDPOINT, double_function, [(1,)])
        )


async def test_the_token_is_renewed_in_a_thread_near_its_expiry_once_for_all_calls(
    pointed: str, double_function: str, make_session: Any
) -> None:
    session = make_session()
    clients = await session.clients()
    first = clients.authorizer.access_token
    tokens = counts(pointed)["token"]

    task_id = await session.submit(ENDPOINT, double_function, (5,))
    assert await session.result(task_id) == 10
    assert counts(pointed)["token"] == tokens  # the header read, the token not renewed
    assert last_sent(pointed, "submit")["headers"]["authorization"] == f"Bearer {first}"

    # Within the SDK's margin of its expiry: the next calls need a new token.
    assert clients.authorizer.expires_at is not None
    clients.authorizer.expires_at = int(time.time()) + 30
    assert current_header(clients.authorizer) is None
    task_ids = await asyncio.gather(
        *(session.submit(str(uuid.uuid4()), double_function, (n,)) for n in range(3)),
        return_exceptions=True,  # unknown endpoints: each submission still needs the header
    )
    headers = await asyncio.gather(*(session._authorization(clients) for _ in range(5)))

    renewed = clients.authorizer.access_token
    assert renewed != first and headers == [f"Bearer {renewed}"] * 5
    assert counts(pointed)["token"] == tokens + 1  # one renewal for all those calls
    assert all(isinstance(error, EndpointUnavailable) for error in task_ids)
    assert last_sent(pointed, "submit")["headers"]["authorization"] == f"Bearer {renewed}"
    assert await session.result(await session.submit(ENDPOINT, double_function, (6,))) == 12
    assert counts(pointed)["token"] == tokens + 1


async def test_a_live_stream_is_left_out_of_polls_until_it_ends(
    service: FakeComputeService, make_session: Any
) -> None:
    endpoint = service.add_endpoint()
    function = service.add_source_function(DOUBLE, "double")
    service.polls_before_start = 3  # each task waits for three polls before it runs
    session = make_session(service_account_secret=fake_compute.CLIENT_SECRET, stream_quiet=60.0)
    streamed, plain = await asyncio.gather(
        session.submit(endpoint, function, (1,)), session.submit(endpoint, function, (2,))
    )
    pulse = StreamPulse()
    pulse.beat()
    streamed_result = asyncio.ensure_future(session.result(streamed, pulse))

    # The plain task's three polls and its result came; the live stream's task was never asked.
    assert await session.result(plain) == 4
    assert service.tasks[streamed].polls == 0 and not streamed_result.done()
    pulse.end()
    assert await streamed_result == 2
    assert service.tasks[streamed].polls >= 3


async def test_a_quiet_stream_is_polled_again(
    service: FakeComputeService, make_session: Any
) -> None:
    endpoint = service.add_endpoint()
    function = service.add_source_function(DOUBLE, "double")
    session = make_session(service_account_secret=fake_compute.CLIENT_SECRET, stream_quiet=0.2)
    pulse = StreamPulse()
    pulse.beat()  # one chunk, then nothing: the function may have died; its result tells

    task_id = await session.submit(endpoint, function, (3,))

    # Never ended, yet its result comes: once quiet, the task is polled as any other.
    assert await session.result(task_id, pulse) == 6
    assert service.tasks[task_id].polls >= 1


async def test_the_connections_to_the_service_are_bounded(
    service: FakeComputeService, make_session: Any
) -> None:
    function = service.add_source_function(DOUBLE, "double")
    hung, free = service.add_endpoint(), service.add_endpoint()
    service.hung_endpoints.add(hung)
    session = make_session(service_account_secret=fake_compute.CLIENT_SECRET, connections=1)

    stuck = asyncio.ensure_future(session.submit(hung, function, (1,)))
    assert await asyncio.to_thread(service.holding.wait, 10)
    waiting = asyncio.ensure_future(session.submit(free, function, (2,)))
    await asyncio.sleep(0.2)
    # COMPUTE_SERVICE_CONNECTIONS=1: the other endpoint's submission waits for the connection
    # (with two, it would have been sent and answered by now).
    sent_meanwhile = len(service.submit_calls)
    done_meanwhile = waiting.done()
    service.release.set()
    task_ids = await asyncio.gather(stuck, waiting)

    assert sent_meanwhile == 1 and not done_meanwhile
    assert len(service.submit_calls) == 2 and len(set(task_ids)) == 2


TEXT_OF = "def text_of(size):\n    return 'x' * size\n"


async def test_a_result_poll_too_long_is_asked_in_halves_and_the_long_result_fails(
    service: FakeComputeService, make_session: Any
) -> None:
    """COMPUTE_MAX_ANSWER_BYTES: the poll that carries both results is over it; asked again in
    halves, the short result arrives and the long one fails alone, instead of every waiting
    task being polled again forever."""
    function = service.add_source_function(TEXT_OF, "text_of")
    endpoint = service.add_endpoint()
    session = make_session(
        service_account_secret=fake_compute.CLIENT_SECRET, max_answer_bytes=20_000
    )
    long_task = await session.submit(endpoint, function, (50_000,))
    short_task = await session.submit(endpoint, function, (100,))
    await asyncio.to_thread(service.run_now, long_task, short_task)
    polls_before = service.batch_status_calls

    long_result, short_result = await asyncio.gather(
        session.result(long_task), session.result(short_task), return_exceptions=True
    )

    assert short_result == "x" * 100
    assert isinstance(long_result, ResultTooLarge)
    assert long_result.task_id == long_task
    assert "larger than 20000 bytes" in str(long_result)
    # Both at once (too long), then each half alone.
    assert service.batch_status_calls - polls_before == 3


def test_a_result_too_long_is_the_callers_502_naming_the_setting() -> None:
    endpoint = make_endpoint(ENDPOINT, str(uuid.uuid4()), 8000)
    refusal = ResultTooLarge("the result of task t-1 is larger than 9 bytes", "t-1")

    error = compute_error(refusal, endpoint)

    assert error.status == 502 and error.code == "compute_result_too_large"
    assert "COMPUTE_MAX_ANSWER_BYTES" in error.message and "t-1" in error.message


async def test_an_answer_is_read_no_further_than_the_bound() -> None:
    """A service answer without a length that goes on (64 MiB, chunked) is dropped after about
    COMPUTE_MAX_ANSWER_BYTES, not read into memory; one with a length over it is not read."""
    limit = 1024 * 1024
    sent = {"chunked": 0, "declared": 0}

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        declared = b"declared" in head
        try:
            if declared:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {64 * limit}\r\n\r\n".encode()
                )
                await writer.drain()
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
            piece = b"x" * 65536
            for _ in range(64 * limit // len(piece)):
                writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                await writer.drain()
                sent["declared" if declared else "chunked"] += len(piece)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    web = ComputeWeb(timeout=10, connections=2, max_answer=limit)
    address = ServiceAddress(f"http://127.0.0.1:{port}", {}, None, False)
    try:
        with pytest.raises(AnswerTooLarge):
            await web.batch_status(address, "Bearer t", ["chunked"])
        declared = dataclasses.replace(address, headers={"X-Case": "declared"})
        with pytest.raises(AnswerTooLarge):
            await web.batch_status(declared, "Bearer t", ["declared"])
        await asyncio.sleep(0.2)  # the servers see the connections closed
    finally:
        await web.close()
        server.close()
        await server.wait_closed()

    # Read up to the bound, then the connection dropped: socket buffers hold a few MB more.
    assert sent["chunked"] < 16 * limit
    assert sent["declared"] < 16 * limit
