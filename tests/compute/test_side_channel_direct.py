"""The side channel's POSTs answered by the gateway's protocol itself
(inference_gateway/direct_answers.py), over real sockets: the application is not called for
them, the answers are those the application gives under uvicorn's own protocol, and HTTP/1.1
(keep-alive, pipelining, Connection: close, 100-continue) and failures behave as uvicorn's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async import runtime
from resource_server_async.api.views import streaming
from resource_server_async.streaming import LocalStreamHub, issue_token
from tests.compute.conftest import STREAMING_SECRET
from tests.compute.inprocess import GATEWAY_PROTOCOL, serve_api
from tests.edge.raw_asgi import read_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("transactional_db")]
DATA = "/resource_server/api/streaming/data/"
MAX_BODY = 4096


@pytest.fixture(autouse=True)
def _streaming(settings: SettingsWrapper) -> None:
    settings.INTERNAL_STREAMING_SECRET = STREAMING_SECRET
    settings.REDIS_URL = ""
    settings.STREAMING_MAX_BODY_BYTES = MAX_BODY


def post(
    task_id: str,
    token: str,
    text: str = "chunk",
    *,
    host: bytes = b"127.0.0.1",
    extra: bytes = b"",
    body: bytes | None = None,
) -> bytes:
    """One side-channel data POST as the bytes on the wire."""
    if body is None:
        body = orjson.dumps({"task_id": task_id, "data": text, "type": "data"})
    return (
        b"POST %b HTTP/1.1\r\nHost: %b\r\nContent-Type: application/json\r\n"
        b"X-Internal-Secret: %b\r\nX-Stream-Task-Token: %b\r\n%bContent-Length: %d\r\n\r\n%b"
        % (DATA.encode(), host, STREAMING_SECRET.encode(), token.encode(), extra, len(body), body)
    )


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """One answer with a content-length: status, headers (lower-case names), body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers[b"content-length"]))
    return int(status_line.split()[1]), headers, body


class CountingApp:
    """The gateway's application, counting the requests that reach it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[int, CountingApp]]:
    counted: list[CountingApp] = []

    def wrap(app: Any) -> Any:
        counted.append(CountingApp(app))
        return counted[0]

    async with serve_api(wrap=wrap) as url:
        yield int(url.rsplit(":", 1)[1]), counted[0]


async def _stream_and_connection(
    task_id: str, port: int
) -> tuple[Any, str, asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream opened in the hub, its token, and a connection to the gateway."""
    subscription, token = await _open_stream(task_id)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return subscription, token, reader, writer


async def _open_stream(task_id: str) -> tuple[Any, str]:
    hub = runtime.current.hub
    assert isinstance(hub, LocalStreamHub)
    return await hub.open(task_id, lifetime=60), issue_token(task_id, 60)


async def test_posts_are_answered_without_the_application_and_relayed(
    gateway: tuple[int, CountingApp],
) -> None:
    port, app = gateway
    subscription, token, reader, writer = await _stream_and_connection("task-d", port)
    answers = []
    for n in range(3):  # one kept-alive connection, as the cluster's function keeps it
        writer.write(post("task-d", token, f"chunk {n}"))
        answers.append(await read_answer(reader))
    writer.write(b"GET /resource_server/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    health = await read_answer(reader)
    writer.close()

    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert all(orjson.loads(body) == {"status": "received"} for _, _, body in answers)
    assert [(await subscription.next(1)).text for _ in range(3)] == [
        "chunk 0",
        "chunk 1",
        "chunk 2",
    ]
    assert health[0] == 200
    assert app.calls == ["/resource_server/health"]  # the POSTs never reached it
    await subscription.close()


def _comparable(answer: tuple[int, dict[bytes, bytes], bytes]) -> tuple[Any, ...]:
    status, headers, body = answer
    return status, {k: v for k, v in headers.items() if k != b"date"}, body


async def _answers_to(port: int, requests: list[bytes]) -> list[tuple[Any, ...]]:
    answers = []
    for request in requests:  # each on its own connection: some answers close theirs
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        answers.append(_comparable(await read_answer(reader)))
        writer.close()
    return answers


async def test_the_answers_are_the_applications_own(settings: SettingsWrapper) -> None:
    """Every kind of answer, byte for byte but the date, as the application gives it under
    uvicorn's protocol (where these POSTs go through the whole application)."""
    token = issue_token("task-c", 60)
    requests = [
        post("task-c", token, "fine"),
        post("task-c", "1.bad"),  # 403
        post("task-c", token, host=b"evil.example"),  # 400 invalid_host
        post("task-c", token, body=b'{"task_id": "task-c", "data": 3}'),  # 400 invalid field
        post("task-c", token, body=b"[1, 2"),  # 400 not JSON
        post("task-c", token, "x" * MAX_BODY),  # 413
        post("task-unknown", issue_token("task-unknown", 60)),  # 410
    ]
    results = {}
    for protocol in (GATEWAY_PROTOCOL, "httptools"):
        async with serve_api(http=protocol) as url:
            subscription, _ = await _open_stream("task-c")
            results[protocol] = await _answers_to(int(url.rsplit(":", 1)[1]), requests)
            await subscription.close()

    direct, through_app = results[GATEWAY_PROTOCOL], results["httptools"]
    assert [answer[0] for answer in direct] == [200, 403, 400, 400, 400, 413, 410]
    assert direct == through_app


async def test_pipelined_posts_are_answered_in_order(gateway: tuple[int, CountingApp]) -> None:
    port, _ = gateway
    subscription, token, reader, writer = await _stream_and_connection("task-p", port)
    # Three requests in one write; the middle one's token is wrong.
    writer.write(
        post("task-p", token, "one") + post("task-p", "1.x") + post("task-p", token, "two")
    )
    statuses = [(await read_answer(reader))[0] for _ in range(3)]
    writer.close()

    assert statuses == [200, 403, 200]
    assert [(await subscription.next(1)).text for _ in range(2)] == ["one", "two"]
    await subscription.close()


async def test_connection_close_and_100_continue_are_honoured(
    gateway: tuple[int, CountingApp],
) -> None:
    port, _ = gateway
    subscription, token, reader, writer = await _stream_and_connection("task-h", port)
    request = post("task-h", token, "after continue", extra=b"Expect: 100-continue\r\n")
    head, body = request.split(b"\r\n\r\n", 1)
    writer.write(head + b"\r\n\r\n")  # the body only once the server says to go on
    assert (await read_until(reader, b"\r\n\r\n")).startswith(b"HTTP/1.1 100 Continue")
    writer.write(body)
    continued = await read_answer(reader)
    writer.write(post("task-h", token, "last", extra=b"Connection: close\r\n"))
    closing = await read_answer(reader)
    ended = await asyncio.wait_for(reader.read(), 5)
    writer.close()

    assert continued[0] == 200
    assert closing[0] == 200 and closing[1][b"connection"] == b"close"
    assert ended == b""  # the server closed the connection after that answer
    assert [(await subscription.next(1)).text for _ in range(2)] == ["after continue", "last"]
    await subscription.close()


async def test_a_failing_side_channel_answers_500_and_closes(
    gateway: tuple[int, CountingApp],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    port, _ = gateway
    logged: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = logged.append  # type: ignore[method-assign]
    uvicorn_log = logging.getLogger("uvicorn.error")  # the protocol's logger
    uvicorn_log.addHandler(handler)
    request.addfinalizer(lambda: uvicorn_log.removeHandler(handler))

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug in the side channel")

    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    monkeypatch.setattr(streaming, "served_directly", broken)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("task-f", "1.x"))
    failed = await read_answer(reader)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    monkeypatch.setattr(streaming, "served_directly", silent)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("task-f", "1.x"))
    unanswered = await asyncio.wait_for(reader.read(), 5)
    writer.close()

    assert failed[0] == 500 and failed[2] == b"Internal Server Error"
    failure, unanswered_line = logged
    assert failure.exc_info is not None and "a bug in the side channel" in str(failure.exc_info[1])
    assert "returned without a whole answer" in unanswered_line.getMessage()
    assert unanswered == b""  # closed without an answer, as uvicorn does
