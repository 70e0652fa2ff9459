"""The inference function's side-channel client (compute_functions/inference.py, SideChannel)
against real HTTP servers: one kept connection for a stream's POSTs, a connection the gateway
closed while idle replaced without losing the POST, retries only where the POST was not taken,
TLS verified by default, and requests for a gateway behind the environment's proxy."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from compute_functions import inference
from compute_functions.inference import SideChannel, SideChannelError, StreamClosed
from tests.servers import free_port
from tests.upstream.certificates import CertificateAuthority

pytestmark = pytest.mark.usefixtures("function_env")


class Gateway:
    """Answers side-channel POSTs from `statuses` (then 200), noting each POST's connection."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.peers: list[tuple[str, int]] = []
        self.paths: list[str] = []
        self.stall = False

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.peers.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        self.paths.append(request.path)
        if self.stall:
            await asyncio.sleep(30)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response(
            {"status": "received"}, status=status, headers={"Retry-After": "0"}
        )


async def _serve(
    gateway: Gateway, keepalive: float = 75.0, context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_post("/resource_server/api/streaming/{kind}/", gateway.handle)
    runner = web.AppRunner(app, keepalive_timeout=keepalive, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    return runner, int(runner.addresses[0][1])


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Gateway, int]]:
    served = Gateway()
    runner, port = await _serve(served, keepalive=0.3)
    yield served, port
    await runner.cleanup()


def _channel(port: int, protocol: str = "http", host: str = "127.0.0.1") -> SideChannel:
    return SideChannel(
        {
            "streaming_server_host": host,
            "streaming_server_port": port,
            "streaming_server_protocol": protocol,
            "stream_task_id": "task-c",
            "stream_task_token": "1999999999.token",
        }
    )


def _posts(channel: SideChannel, count: int) -> None:
    try:
        for n in range(count):
            channel.data(f"data: {n}")
    finally:
        channel.close()


async def test_a_streams_posts_share_one_connection(gateway: tuple[Gateway, int]) -> None:
    served, port = gateway
    channel = _channel(port)
    assert channel.session is None  # no proxy here: the kept http.client connection

    await asyncio.to_thread(_posts, channel, 20)

    assert len(served.peers) == 20
    assert len(set(served.peers)) == 1


async def test_a_connection_closed_while_idle_is_replaced_without_a_retry_delay(
    gateway: tuple[Gateway, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, port = gateway
    monkeypatch.setattr(inference, "RETRY_DELAYS", (30.0,))  # a retry would show as a hang
    channel = _channel(port)

    def posts_around_an_idle_gap() -> None:
        channel.data("data: before")
        time.sleep(0.8)  # past the server's keep-alive timeout: it closes the connection
        channel.data("data: after")
        channel.close()

    await asyncio.wait_for(asyncio.to_thread(posts_around_an_idle_gap), 10)

    assert len(served.peers) == 2
    assert served.peers[0] != served.peers[1]  # a new connection for the second


async def test_retries_where_the_post_was_not_taken_and_stops_when_closed(
    gateway: tuple[Gateway, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, port = gateway
    monkeypatch.setattr(inference, "RETRY_DELAYS", (0.01, 0.01))
    served.statuses = [503, 503]
    await asyncio.to_thread(_posts, _channel(port), 1)  # two 503s, then taken
    assert len(served.paths) == 3

    served.statuses = [410]
    with pytest.raises(StreamClosed):
        await asyncio.to_thread(_posts, _channel(port), 1)

    nobody = free_port()
    with pytest.raises(SideChannelError, match="cannot reach the gateway"):
        await asyncio.to_thread(_posts, _channel(nobody), 1)


async def test_a_post_without_an_answer_is_not_sent_again(
    gateway: tuple[Gateway, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, port = gateway
    monkeypatch.setenv("STREAMING_POST_TIMEOUT", "0.3")
    served.stall = True

    with pytest.raises(SideChannelError, match="did not answer in time"):
        await asyncio.to_thread(_posts, _channel(port), 1)

    assert len(served.paths) == 1  # it may have been taken: not repeated


async def test_tls_is_verified_by_default_and_with_a_ca_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority = CertificateAuthority(tmp_path)
    issued = authority.issue("gateway", server_names=["localhost"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    served = Gateway()
    runner, port = await _serve(served, context=context)
    monkeypatch.setattr(inference, "RETRY_DELAYS", ())
    try:
        with pytest.raises(SideChannelError, match="CERTIFICATE_VERIFY_FAILED"):
            await asyncio.to_thread(_posts, _channel(port, "https", "localhost"), 1)
        monkeypatch.setenv("STREAMING_TLS_VERIFY", str(authority.cert))
        await asyncio.to_thread(_posts, _channel(port, "https", "localhost"), 2)
        monkeypatch.setenv("STREAMING_TLS_VERIFY", "false")
        await asyncio.to_thread(_posts, _channel(port, "https", "127.0.0.1"), 1)
    finally:
        await runner.cleanup()

    assert served.paths == ["/resource_server/api/streaming/data/"] * 3


async def test_a_gateway_behind_the_environments_proxy_is_posted_to_through_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = Gateway()  # takes the proxied POSTs (absolute-form requests) itself
    runner, proxy_port = await _serve(proxy)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
    monkeypatch.setenv("NO_PROXY", "bypassed.example")
    try:
        proxied = _channel(4321, host="gateway.example")
        bypassed = _channel(4321, host="bypassed.example")
        await asyncio.to_thread(_posts, proxied, 2)
    finally:
        await runner.cleanup()

    assert proxied.session is not None  # requests, which knows every form of the settings
    assert bypassed.session is None
    assert proxy.paths == ["/resource_server/api/streaming/data/"] * 2
