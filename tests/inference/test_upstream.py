"""Unit tests of the upstream pieces: URL handling, the session pool, error mapping, status page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web

from resource_server_async.clusters.base import ClusterRow
from resource_server_async.clusters.direct_api import DirectAPICluster, DirectAPIClusterConfig
from resource_server_async.clusters.status_page import StatusPage, index_states
from resource_server_async.endpoints.base import EndpointRow
from resource_server_async.endpoints.direct_api import DirectAPIEndpoint, DirectAPIEndpointConfig
from resource_server_async.errors import GatewayError
from resource_server_async.runtime import Runtime, installed
from resource_server_async.upstream.clients import api_base, origin_of
from resource_server_async.upstream.errors import parse_error_body, reply_error


@pytest.mark.parametrize(
    "api_url",
    [
        "http://h:8000",
        "http://h:8000/",
        "http://h:8000/v1",
        "http://h:8000/v1/",
        " http://h:8000/v1 ",
    ],
)
def test_api_base_accepts_urls_with_or_without_v1(api_url: str) -> None:
    assert api_base(api_url) == "http://h:8000"


def test_api_base_keeps_a_path_prefix() -> None:
    assert api_base("https://proxy.example.org/llm/v1") == "https://proxy.example.org/llm"
    assert origin_of("https://proxy.example.org/llm") == "https://proxy.example.org"


def endpoint(api_url: str = "http://127.0.0.1:9/v1") -> DirectAPIEndpoint:
    cluster_row = ClusterRow("c1", "x", ("vllm",), ("chat/completions",))
    cluster = DirectAPICluster(cluster_row, DirectAPIClusterConfig())
    row = EndpointRow("c1-vllm-m", "c1", "vllm", "M", "x")
    return DirectAPIEndpoint(row, DirectAPIEndpointConfig(api_url=api_url), cluster)


def test_endpoint_url_for_each_operation() -> None:
    assert endpoint().url_for("chat/completions") == "http://127.0.0.1:9/v1/chat/completions"
    assert endpoint("http://h").url_for("embeddings") == "http://h/v1/embeddings"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"error": {"message": "bad", "type": "x", "param": "temperature", "code": "c"}}',
            ("bad", "temperature", "c"),
        ),
        (
            b'{"object": "error", "message": "vllm says no", "code": 400}',
            ("vllm says no", None, None),
        ),
        (
            b'{"type": "error", "error": {"type": "t", "message": "anthropic"}}',
            ("anthropic", None, None),
        ),
        (b'{"detail": "Not Found"}', ("Not Found", None, None)),
        (
            b'{"detail": [{"loc": ["body"], "msg": "x"}]}',
            ('[{"loc":["body"],"msg":"x"}]', None, None),
        ),
        (b'{"error": "plain"}', ("plain", None, None)),
        (b"<html>502 Bad Gateway</html>", ("<html>502 Bad Gateway</html>", None, None)),
        (b"", ("(empty body)", None, None)),
    ],
)
def test_error_bodies_of_common_servers_are_understood(
    body: bytes, expected: tuple[str, str | None, str | None]
) -> None:
    assert parse_error_body(body) == expected


def test_reply_error_keeps_4xx_and_scrubs_the_key() -> None:
    error = reply_error(
        400, b'{"error": {"message": "header was Bearer sk-123"}}', endpoint(), "sk-123"
    )

    assert (error.status, error.code, error.message) == (
        400,
        "upstream_error",
        "header was Bearer ***",
    )
    assert error.info == {"cluster": "c1", "model": "M", "upstream_status": 400}


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "upstream_error"),
        (503, "upstream_error"),
        (302, "upstream_error"),
        (403, "upstream_auth_failed"),
    ],
)
def test_reply_error_maps_server_failures_to_502(status: int, code: str) -> None:
    error = reply_error(status, b"oops sk-123", endpoint(), "sk-123")

    assert (error.status, error.code) == (502, code)
    assert "sk-123" not in error.message


def test_status_index_reads_model_experts_and_key() -> None:
    states = index_states(
        {
            "a": {"status": "Live", "model": "Model-A", "experts": ["Expert-1"]},
            "b": {"status": "Stopped", "model": "model-a"},
            "c": {"status": "Stopped", "model": "model-c"},
            "d": "not an entry",
        }
    )

    assert states == {
        "a": "Live",
        "model-a": "Live",  # a live entry wins over a stopped one
        "expert-1": "Live",
        "b": "Stopped",
        "c": "Stopped",
        "model-c": "Stopped",
    }
    assert index_states(["not", "a", "dict"]) == {}


@pytest.fixture
async def status_server(runtime: Runtime) -> AsyncIterator[tuple[str, list[int]]]:
    # The status page is fetched through the runtime's pooled sessions.
    hits: list[int] = []

    async def status(request: web.Request) -> web.Response:
        hits.append(1)
        await asyncio.sleep(0.05)
        return web.Response(body=orjson.dumps({"k": {"status": "Live", "model": "m"}}))

    app = web.Application()
    app.router.add_get("/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/status", hits
    await runner.cleanup()


async def test_status_page_is_fetched_once_for_concurrent_requests(
    status_server: tuple[str, list[int]],
) -> None:
    url, hits = status_server
    page = StatusPage("c1", url, timeout=2, cache_seconds=60)

    states = await asyncio.gather(*(page.state_of("M") for _ in range(20)))

    assert states == ["Live"] * 20
    assert len(hits) == 1
    assert await page.state_of("unknown") is None
    assert len(hits) == 1  # cached


async def test_status_page_that_cannot_be_read_is_503(runtime: Runtime) -> None:
    page = StatusPage("c1", "http://127.0.0.1:9/status", timeout=1, cache_seconds=60)

    with pytest.raises(GatewayError) as caught:
        await page.state_of("m")

    assert (caught.value.status, caught.value.code) == (503, "cluster_status_unavailable")
    assert "cluster 'c1'" in caught.value.message


async def test_one_session_per_origin_closed_with_the_runtime() -> None:
    async with installed(Runtime.from_settings()) as runtime:
        pool = runtime.upstream
        first = pool.session("http://127.0.0.1:1")
        assert pool.session("http://127.0.0.1:1") is first
        other = pool.session("http://127.0.0.1:2")
        assert other is not first
        assert sorted(pool.origins) == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
        assert not first.closed and not other.closed

    # The app's lifespan closes its runtime the same way at shutdown.
    assert first.closed and other.closed
    assert pool.origins == []
