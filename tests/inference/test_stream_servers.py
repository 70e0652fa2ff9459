"""A relayed stream is the same bytes whether the gateway's protocol writes its chunks
(resource_server_async/chunk_writer.py) or, under uvicorn's own protocol, `send` does."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx2
import pytest

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

CHAT = "/resource_server/alpha/vllm/v1/chat/completions"


@pytest.fixture(scope="module")
def under_uvicorns_protocol(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("uvicorn-protocol-gateway")
    files = CatalogFiles()
    files.cluster("alpha", operations=["chat/completions"])
    files.endpoint("alpha", "fake-model", backend.url)
    # The last --http wins: uvicorn's httptools protocol, which offers no chunk writer.
    options = ("--http", "httptools")
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), options=options) as server:
        yield server


def streamed(gateway: GatewayServer, words: int) -> tuple[bytes, bytes]:
    """The body (its chunked framing undone by the client) and the media type of a stream of
    about `words` content chunks."""
    prompt = " ".join(f"w{i}" for i in range(words))
    body = {"model": "fake-model", "messages": [{"role": "user", "content": prompt}]}
    with httpx2.stream(
        "POST",
        f"{gateway.url}{CHAT}",
        json={**body, "stream": True},
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=20,
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["transfer-encoding"] == "chunked"
        raw = b"".join(answer.iter_bytes())
    return raw, answer.headers["content-type"].encode()


def without_ids(raw: bytes) -> bytes:
    """The events without what the fake backend makes anew for each answer."""
    raw = re.sub(rb'"id": ?"[^"]*"', b'"id":""', raw)
    return re.sub(rb'"created": ?\d+', b'"created":0', raw)


def test_chunks_written_by_the_protocol_are_the_bytes_send_writes(
    gateway: GatewayServer, under_uvicorns_protocol: GatewayServer
) -> None:
    ours, our_type = streamed(gateway, 30)
    theirs, their_type = streamed(under_uvicorns_protocol, 30)

    assert ours.endswith(b"data: [DONE]\n\n") and ours.count(b"data: ") == 30 + 4
    assert without_ids(ours) == without_ids(theirs) and our_type == their_type
