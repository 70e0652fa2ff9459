"""Federated routing by live state, load, circuits and sessions, end to end: three clusters serve
one model, two through Globus Compute (the real SDK and adapter code against the fake service,
a real HTTP server, the inference function executed for real) and one directly. The gateway's
API runs in this process (the test changes the fake's endpoints), driven by the official async
clients.

  hpc-a   Compute endpoint with workers, no scheduler ("jobs_from": "endpoints")   -> ready
  hpc-b   Compute endpoint without workers; its PBS queue holds the model's job   -> queued
  direct  a direct server whose GET /v1/models lists the model                    -> ready
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import openai
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async import runtime
from resource_server_async.auth.api_keys import create_key
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.clusters.live_state import LiveState, current_state
from resource_server_async.compute.functions import PBS_STATUS
from tests.compute.catalog import DIRECT_CLUSTER, GLOBUS_CLUSTER, GLOBUS_ENDPOINT
from tests.compute.conftest import (  # noqa: F401 (fixtures)
    function_env,
    globus_settings,
    inference_function,
    service,
)
from tests.compute.fake_compute import FakeComputeService
from tests.compute.inprocess import serve_api
from tests.compute.scheduler import FakePBS
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import DIRECT_ENDPOINT
from tests.servers import free_port
from tests.waiting import wait_until_async

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("globus_settings")]

MODEL = "shared-model"
HELLO = [{"role": "user", "content": "hi"}]
A, B, DIRECT = "hpc-a/vllm", "hpc-b/vllm", "direct/vllm"
SLUGS = {
    A: "hpc-a-vllm-shared-model",
    B: "hpc-b-vllm-shared-model",
    DIRECT: "direct-vllm-shared-model",
}
OPERATIONS = ["chat/completions", "completions", "messages"]


@pytest.fixture
def hpc_backend() -> Iterator[FakeBackend]:
    """The model server the Compute endpoints' function calls (on the "node")."""
    with FakeBackend(models=(MODEL,)) as server:
        yield server


@pytest.fixture
def direct_backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=(MODEL,)) as server:
        yield server


@dataclass
class Federation:
    url: str
    key: str
    service: FakeComputeService
    endpoint_a: str  # Compute endpoint ids
    endpoint_b: str
    direct: FakeBackend

    def openai(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/resource_server/v1", api_key=self.key, max_retries=0, timeout=20
        )

    async def served_by(self, client: openai.AsyncOpenAI, session: str | None = None) -> str:
        headers = {"x-session-id": session} if session else {}
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=HELLO, extra_headers=headers
        )
        assert raw.parse().choices[0].message.content == "Echo: hi"
        return raw.headers["x-served-by"]


def state(cluster: str) -> LiveState:
    return current_state(catalog.snapshot.endpoints[SLUGS[cluster]])


async def states_become(**wanted: LiveState) -> None:
    names = {"a": A, "b": B, "direct": DIRECT}
    await wait_until_async(lambda: all(state(names[k]) == v for k, v in wanted.items()))


def create_rows(
    a: str, b: str, login: str, inference: str, status: str, hpc_port: int, direct_url: str
) -> None:
    from resource_server_async.models import Cluster, Endpoint

    def cluster(name: str, adapter: str, config: dict[str, str]) -> None:
        Cluster.objects.create(
            cluster_name=name,
            cluster_adapter=adapter,
            frameworks=["vllm"],
            openai_endpoints=OPERATIONS,
            config=config,
        )

    def endpoint(name: str, adapter: str, config: dict[str, object]) -> None:
        Endpoint.objects.create(
            endpoint_slug=SLUGS[f"{name}/vllm"],
            cluster=name,
            framework="vllm",
            model=MODEL,
            endpoint_adapter=adapter,
            config=config,
        )

    cluster("hpc-a", GLOBUS_CLUSTER, {"jobs_from": "endpoints"})
    cluster("hpc-b", GLOBUS_CLUSTER, {"qstat_endpoint_uuid": login, "qstat_function_uuid": status})
    cluster("direct", DIRECT_CLUSTER, {})
    for name, uuid in (("hpc-a", a), ("hpc-b", b)):
        config = {"api_port": hpc_port, "endpoint_uuid": uuid, "function_uuid": inference}
        endpoint(name, GLOBUS_ENDPOINT, config)
    endpoint("direct", DIRECT_ENDPOINT, {"api_url": direct_url})


@pytest.fixture
def rows(
    transactional_db: None,
    service: FakeComputeService,  # noqa: F811 (the fixture imported above)
    inference_function: str,  # noqa: F811
    hpc_backend: FakeBackend,
    direct_backend: FakeBackend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The catalog in the database; the cluster hpc-b's PBS (on PATH) has the model queued."""
    pbs = FakePBS(tmp_path, "hpc-b", ["another-model"], queued=MODEL)
    monkeypatch.setenv("PATH", f"{pbs.bin}{os.pathsep}{os.environ['PATH']}")
    a = service.add_endpoint()
    b = service.add_endpoint(workers=0)  # its block waits in the queue
    login = service.add_endpoint()
    status = service.add_source_function(PBS_STATUS.source(), PBS_STATUS.entry_point)
    create_rows(a, b, login, inference_function, status, hpc_backend.port, direct_backend.url)
    key, _ = create_key("routing")
    return {"a": a, "b": b, "key": key}


@pytest.fixture
async def federation(
    rows: dict[str, str],
    service: FakeComputeService,  # noqa: F811
    direct_backend: FakeBackend,
    settings: SettingsWrapper,
) -> AsyncIterator[Federation]:
    port = free_port()
    settings.STREAMING_SERVER_HOST = "127.0.0.1"
    settings.STREAMING_SERVER_PORT = port
    settings.STREAMING_SERVER_PROTOCOL = "http"
    settings.JOBS_CACHE_SECONDS = 0.1
    settings.LIVE_STATE_SECONDS = 0.1
    settings.LIVE_STATE_FIRST_WAIT = 10.0
    settings.ROUTING_CIRCUIT_FAILURES = 3
    settings.ROUTING_CIRCUIT_COOLDOWN_SECONDS = 0.5
    async with serve_api(port) as url:
        yield Federation(url, rows["key"], service, rows["a"], rows["b"], direct_backend)


async def test_the_order_follows_the_live_states(federation: Federation) -> None:
    client = federation.openai()
    served = {await federation.served_by(client) for _ in range(8)}
    await states_become(a=LiveState.READY, b=LiveState.QUEUED, direct=LiveState.READY)

    assert served <= {A, DIRECT}  # never the queued one while a ready one answers

    federation.direct.models = ("another-model",)  # the server no longer lists it
    await states_become(direct=LiveState.REACHABLE)
    assert {await federation.served_by(client) for _ in range(5)} == {A}


async def test_an_offline_endpoint_and_a_queued_job_are_routed_around(
    federation: Federation,
) -> None:
    client = federation.openai()
    federation.service.set_endpoint(federation.endpoint_a, "offline", 0, 0)
    federation.direct.models = ("another-model",)
    # Until the states are read again hpc-a still looks ready: it is tried, and refuses.
    assert await federation.served_by(client) == DIRECT
    await states_become(a=LiveState.OFFLINE, b=LiveState.QUEUED, direct=LiveState.REACHABLE)

    # hpc-b (queued) is now tried first and answers model_starting; no client sees an error.
    assert {await federation.served_by(client) for _ in range(5)} == {DIRECT}


async def test_a_killed_server_moves_traffic_and_its_circuit_opens_then_closes(
    federation: Federation, settings: SettingsWrapper
) -> None:
    settings.LIVE_STATE_SECONDS = 60.0  # the states stay "ready": only the circuit reacts
    client = federation.openai()
    for _ in range(4):  # both timed once: the direct server is the faster
        await federation.served_by(client)
    assert await federation.served_by(client) == DIRECT
    circuits = runtime.current.routing.circuits
    port = federation.direct.port

    federation.direct.stop()
    # Requests that had not started go elsewhere: each tries the dead server first, until its
    # circuit opens after the third failure; then it is skipped.
    for _ in range(3):
        assert await federation.served_by(client) == A
    assert circuits.state(SLUGS[DIRECT]) == "open"
    answers = await asyncio.gather(*(federation.served_by(client) for _ in range(6)))
    assert set(answers) == {A}

    federation.direct.start(port=port)
    await wait_until_async(lambda: circuits.state(SLUGS[DIRECT]) == "half_open")
    assert await federation.served_by(client) == DIRECT  # the probe, and it closes the circuit
    assert circuits.state(SLUGS[DIRECT]) == "closed"


async def test_a_circuit_that_stays_failing_opens_again(
    federation: Federation, settings: SettingsWrapper
) -> None:
    settings.LIVE_STATE_SECONDS = 60.0
    client = federation.openai()
    circuits = runtime.current.routing.circuits
    for _ in range(4):
        await federation.served_by(client)
    federation.direct.stop()
    for _ in range(3):
        assert await federation.served_by(client) == A
    assert circuits.state(SLUGS[DIRECT]) == "open"

    await wait_until_async(lambda: circuits.state(SLUGS[DIRECT]) == "half_open")
    assert await federation.served_by(client) == A  # the probe failed over

    assert circuits.state(SLUGS[DIRECT]) == "open"


async def test_sessions_stay_on_their_endpoint_and_move_only_when_it_leaves_the_best_class(
    federation: Federation,
) -> None:
    client = federation.openai()
    await federation.served_by(client)
    await states_become(a=LiveState.READY, b=LiveState.QUEUED, direct=LiveState.READY)
    sessions = [f"agent-{n}" for n in range(12)]

    home = {s: await federation.served_by(client, s) for s in sessions}
    for session in sessions:
        assert {await federation.served_by(client, session) for _ in range(3)} == {home[session]}
    assert set(home.values()) == {A, DIRECT}  # the sessions spread over the best class

    federation.service.set_endpoint(federation.endpoint_a, "offline", 0, 0)
    await states_become(a=LiveState.OFFLINE)
    assert {s: await federation.served_by(client, s) for s in sessions} == dict.fromkeys(
        sessions, DIRECT
    )

    federation.service.set_endpoint(federation.endpoint_a, "online", 1, 4)
    await states_become(a=LiveState.READY)
    assert {s: await federation.served_by(client, s) for s in sessions} == home


async def test_the_alcf_session_header_is_a_session_too(federation: Federation) -> None:
    client = federation.openai()
    await federation.served_by(client)
    await states_become(a=LiveState.READY, direct=LiveState.READY)
    chosen = set()
    for _ in range(4):
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=HELLO, extra_headers={"X-ALCF-Session-ID": "alcf-7"}
        )
        chosen.add(raw.headers["x-served-by"])
    assert len(chosen) == 1


async def test_openai_and_anthropic_clients_on_the_federated_url_streaming_included(
    federation: Federation,
) -> None:
    client = federation.openai()
    stream = await client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Echo: hi"
    completion = await client.completions.create(model=MODEL, prompt="p")
    assert completion.choices[0].text

    claude = anthropic.AsyncAnthropic(
        base_url=f"{federation.url}/resource_server", api_key=federation.key, max_retries=0
    )
    raw = await claude.messages.with_raw_response.create(
        model=MODEL, max_tokens=32, messages=[{"role": "user", "content": "hello"}]
    )
    message = await raw.parse()
    assert message.content[0].text == "Echo: hello"  # type: ignore[union-attr]
    assert raw.headers["x-served-by"] in {A, DIRECT}
    async with claude.messages.stream(
        model=MODEL, max_tokens=32, messages=[{"role": "user", "content": "streamed"}]
    ) as events:
        assert await events.get_final_text() == "Echo: streamed"
