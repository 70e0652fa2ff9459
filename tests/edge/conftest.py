"""One fake model server and one real gateway (uvicorn with the gateway's HTTP protocol)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer

# Small, so that a refused header is read whole by the server and its 431 reaches the client.
HEADER_LIMIT = 16 * 1024
JSON_DEPTH = 64


@pytest.fixture(scope="package")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("fake-model",)) as server:
        yield server


@pytest.fixture(scope="package")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("edge-gateway")
    files = CatalogFiles()
    files.cluster("alpha")
    files.endpoint("alpha", "fake-model", backend.url)
    env = {
        "MAX_REQUEST_HEADER_BYTES": str(HEADER_LIMIT),
        "MAX_JSON_DEPTH": str(JSON_DEPTH),
        # The quiet end of a body cut short is a DEBUG line: the tests wait for it.
        "LOG_LEVEL": "DEBUG",
    }
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


@pytest.fixture(scope="package")
def client(gateway: GatewayServer) -> OpenAI:
    return gateway.openai_client()


def request(
    gateway: GatewayServer,
    path: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes = b"",
) -> tuple[int, bytes, http.client.HTTPMessage]:
    """One raw request (http.client sends the Host header it is given, unlike most clients)."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        headers = {"Host": f"127.0.0.1:{gateway.port}", **(headers or {})}
        if body:
            headers["Content-Length"] = str(len(body))
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        return response.status, response.read(), response.headers
    finally:
        connection.close()
