"""A fake model server (OpenAI only), one that also speaks Messages, and one real gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.accounting.records_db import fetch_records
from tests.anthropic.fake_messages_backend import MessagesBackend
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until


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
    env = {"TRUSTED_PROXY_NETWORKS": "127.0.0.1/32"}
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


@pytest.fixture
def record_of(gateway: GatewayServer) -> Callable[[str], dict]:
    """The record of a request id, once the writer has written it."""

    def find(request_id: str) -> dict:
        url = gateway.env["DATABASE_URL"]
        found: list[dict] = []

        def written() -> bool:
            found[:] = fetch_records(url, "request_id = ?", (request_id,))
            return bool(found)

        wait_until(written, timeout=10)
        assert len(found) == 1, found
        return found[0]

    return find
