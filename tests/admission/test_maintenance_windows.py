"""Maintenance windows as rows: `manage.py maintenance` on one host closes and reopens a cluster
(or one endpoint of it) on time in every gateway process sharing the database, without a
restart; cluster-scoped requests answer 503 with the message and Retry-After until the end,
federated ones go to another cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
MESSAGE = "gamma is down for a filesystem upgrade"
# How late a process may notice that a window started or ended: the check is the clock at each
# request, so only a loaded machine's scheduling delays it.
LATE = 1.5


@pytest.fixture(scope="module")
def window_backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("moving-model", "gamma-only", "second-model")) as server:
        yield server


@pytest.fixture(scope="module")
def hosts(
    tmp_path_factory: pytest.TempPathFactory, window_backend: FakeBackend
) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    """Two gateway processes on one database, as two hosts behind a load balancer."""
    files = CatalogFiles()
    files.cluster("gamma")
    files.cluster("delta")
    files.endpoint("gamma", "moving-model", window_backend.url)
    files.endpoint("delta", "moving-model", window_backend.url)
    files.endpoint("gamma", "gamma-only", window_backend.url)
    files.endpoint("gamma", "second-model", window_backend.url)
    one, two = tmp_path_factory.mktemp("window-host"), tmp_path_factory.mktemp("window-host")
    with GatewayServer(one, fixtures=files.write(one / "fixtures")) as first:
        env = {"DATABASE_URL": first.env["DATABASE_URL"]}
        with GatewayServer(two, env=env) as second:
            yield first, second


@pytest.fixture(autouse=True)
def no_windows_left(hosts: tuple[GatewayServer, GatewayServer]) -> Iterator[None]:
    yield
    hosts[0].manage("maintenance", "gamma", "off")
    wait_until(lambda: all(status(host)["gamma"]["state"] == "open" for host in hosts))


def status(host: GatewayServer) -> dict[str, dict[str, str | None]]:
    answer = httpx2.get(f"{host.url}/resource_server/status?detail=true")
    assert answer.status_code == 200
    return answer.json()


def chat(host: GatewayServer, base: str, model: str) -> httpx2.Response:
    return httpx2.post(
        f"{host.url}/resource_server{base}/v1/chat/completions",
        json={"model": model, "messages": HELLO},
        headers={"Authorization": f"Bearer {host.api_key}"},
    )


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def closed(host: GatewayServer) -> bool:
    return status(host)["gamma"]["state"] == "maintenance"


def test_a_window_starts_and_ends_on_time_in_every_process(
    hosts: tuple[GatewayServer, GatewayServer], window_backend: FakeBackend
) -> None:
    start = time.time() + 4.0
    end = start + 4.0
    hosts[0].manage(
        "maintenance", "gamma", "on", "--message", MESSAGE, "--start", iso(start), "--end", iso(end)
    )

    for host in hosts:
        wait_until(lambda host=host: closed(host), timeout=15)  # type: ignore[misc]
        seen = time.time()
        assert start <= seen < start + LATE, f"closed {seen - start:+.2f} s from the start"
    for host in hosts:
        refused = chat(host, "/gamma/vllm", "moving-model")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "cluster_maintenance"
        assert refused.json()["error"]["message"] == MESSAGE
        retry_after = int(refused.headers["retry-after"])
        assert 0 < retry_after <= round(end - time.time()) + 1
        assert status(host)["gamma"] == {
            "state": "maintenance",
            "message": MESSAGE,
            "until": iso(end),
        }
        # Federated: the other cluster serves the model, with no error for the caller.
        assert chat(host, "", "moving-model").status_code == 200

    for host in hosts:
        wait_until(lambda host=host: not closed(host), timeout=15)  # type: ignore[misc]
        seen = time.time()
        assert end <= seen < end + LATE, f"reopened {seen - end:+.2f} s from the end"
        assert chat(host, "/gamma/vllm", "moving-model").status_code == 200


def test_off_reopens_an_open_ended_window_in_every_process(
    hosts: tuple[GatewayServer, GatewayServer],
) -> None:
    hosts[1].manage("maintenance", "gamma", "on")
    for host in hosts:
        wait_until(lambda host=host: closed(host))  # type: ignore[misc]
        answer = chat(host, "/gamma/vllm", "gamma-only")
        assert answer.status_code == 503
        assert answer.json()["error"]["message"] == "Cluster 'gamma' is under maintenance."
        assert answer.headers["retry-after"] == "30", "no end: the default retry hint"
    # The contract's shape of /status is kept: false while under maintenance.
    assert httpx2.get(f"{hosts[0].url}/resource_server/status").json()["gamma"] is False

    out = hosts[0].manage("maintenance", "gamma", "off").stdout
    assert "Ended 1 maintenance window(s) of gamma." in out
    for host in hosts:
        wait_until(lambda host=host: not closed(host))  # type: ignore[misc]
        assert chat(host, "/gamma/vllm", "gamma-only").status_code == 200


def test_an_endpoint_window_closes_that_endpoint_only(
    hosts: tuple[GatewayServer, GatewayServer],
) -> None:
    hosts[0].manage(
        "maintenance", "gamma", "on", "--endpoint", "gamma-vllm-second-model", "--end", "+10m"
    )
    host = hosts[1]
    wait_until(lambda: chat(host, "/gamma/vllm", "second-model").status_code == 503)

    assert chat(host, "/gamma/vllm", "gamma-only").status_code == 200
    assert status(host)["gamma"]["state"] == "open", "the cluster as a whole stays open"
    models = httpx2.get(
        f"{host.url}/resource_server/gamma/vllm/v1/models",
        headers={"Authorization": f"Bearer {host.api_key}"},
    ).json()["data"]
    states = {m["id"]: m["served_by"][0]["state"] for m in models}
    assert states["second-model"] == "maintenance"
    assert states["gamma-only"] == "ready"


def test_the_command_refuses_what_it_cannot_do(hosts: tuple[GatewayServer, GatewayServer]) -> None:
    unknown = hosts[0].manage("maintenance", "nowhere", "on", check=False)
    assert unknown.returncode != 0
    assert "There is no cluster 'nowhere' (known clusters: delta, gamma)." in unknown.stderr
    backwards = hosts[0].manage(
        "maintenance", "gamma", "on", "--start", "+2h", "--end", "+1h", check=False
    )
    assert backwards.returncode != 0
    assert "must be after --start" in backwards.stderr
    garbled = hosts[0].manage("maintenance", "gamma", "on", "--end", "tomorrow", check=False)
    assert "'tomorrow' is not a time" in garbled.stderr


def test_the_openai_client_sees_the_message_and_the_federated_route_moves_on(
    hosts: tuple[GatewayServer, GatewayServer],
) -> None:
    hosts[0].manage("maintenance", "gamma", "on", "--message", MESSAGE, "--end", "+10m")
    host = hosts[0]
    wait_until(lambda: closed(host))

    scoped = host.openai_client("/resource_server/gamma/vllm/v1")
    with pytest.raises(openai.APIStatusError) as caught:
        scoped.chat.completions.create(model="moving-model", messages=HELLO)
    assert caught.value.status_code == 503
    assert caught.value.response.json()["error"]["message"] == MESSAGE
    federated = host.openai_client("/resource_server/v1")
    reply = federated.chat.completions.with_raw_response.create(
        model="moving-model",
        messages=HELLO,
    )
    assert reply.http_response.status_code == 200
