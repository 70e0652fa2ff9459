"""One fake model server and one real gateway with three keys: a user, another user, an operator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer


@dataclass(frozen=True)
class Keys:
    user: str  # the gateway's first key: principal api_key:1
    other: str
    operator: str


@pytest.fixture(scope="package")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("fake-model", "other-model")) as server:
        yield server


@pytest.fixture(scope="package")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("usage-gateway")
    files = CatalogFiles()
    files.cluster("alpha")
    files.endpoint("alpha", "fake-model", backend.url)
    files.endpoint("alpha", "other-model", backend.url)
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures")) as server:
        yield server


@pytest.fixture(scope="package")
def keys(gateway: GatewayServer) -> Keys:
    return Keys(
        user=gateway.api_key,
        other=gateway.create_api_key("other"),
        operator=gateway.create_api_key("ops", "--operator"),
    )
