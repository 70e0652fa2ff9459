"""A fake model server (OpenAI only), one that also speaks Messages, and one real gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx2 as httpx
import pytest

from tests.accounting import faulty_endpoint
from tests.accounting.records_db import fetch_records
from tests.anthropic.fake_messages_backend import MessagesBackend
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until

# A TEST-NET address no connection comes from (uvicorn's --forwarded-allow-ips).
UVICORN_PROXY = "192.0.2.1"


@pytest.fixture(scope="package")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("fake-model", "quiet-model")) as server:
        yield server


@pytest.fixture(scope="package")
def native_backend() -> Iterator[MessagesBackend]:
    with MessagesBackend(native=True, models=("native-model",)) as server:
        yield server


@pytest.fixture(scope="package")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend, native_backend: MessagesBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("accounting-gateway")
    files = CatalogFiles()
    files.cluster(
        "alpha",
        operations=["chat/completions", "completions", "embeddings", "responses", "messages"],
    )
    files.endpoint("alpha", "fake-model", backend.url, messages_api="translate")
    # A server the gateway must not ask for stream usage: its streams are estimated.
    files.endpoint("alpha", "quiet-model", backend.url, stream_include_usage=False)
    files.endpoint("alpha", "native-model", native_backend.url, messages_api="native")
    # The same server again, for completions streams (test_records teaches the gateway that
    # fake-model refuses stream_options).
    files.endpoint("alpha", "counted-model", backend.url)
    # The same server, its Responses API translated to chat/completions.
    files.endpoint("alpha", "chat-model", backend.url, responses_api="translate")
    # An adapter with a bug: the gateway's own 500.
    files.endpoint("alpha", "broken-model", backend.url, adapter=faulty_endpoint.PATH)
    env = {
        # Our proxy and another network of proxies: X-Forwarded-For is believed from them.
        "TRUSTED_PROXY_NETWORKS": "127.0.0.1/32,10.0.0.0/8",
        # uvicorn rewrites the peer itself only for this (absent) proxy: the gateway decides.
        "FORWARDED_ALLOW_IPS": UVICORN_PROXY,
    }
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


def stream_bytes(gateway: GatewayServer, path: str, body: dict, request_id: str) -> bytes:
    """The raw bytes of a streamed answer, as a client reads them."""
    with httpx.stream(
        "POST",
        f"{gateway.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {gateway.api_key}", "x-request-id": request_id},
        timeout=20,
    ) as answer:
        assert answer.status_code == 200
        return b"".join(answer.iter_bytes())


def record_in(database_url: str, request_id: str) -> dict:
    """The record of a request id in a gateway's database, once its writer has written it."""
    found: list[dict] = []

    def written() -> bool:
        found[:] = fetch_records(database_url, "request_id = ?", (request_id,))
        return bool(found)

    wait_until(written, timeout=10)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def record_of(gateway: GatewayServer) -> Callable[[str], dict]:
    """The record of a request id on the package's gateway."""
    return lambda request_id: record_in(gateway.env["DATABASE_URL"], request_id)
