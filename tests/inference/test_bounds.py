"""One caller cannot stall or bloat the gateway through a model server: the wait for a pooled
connection and the size of an answer read into memory are bounded.

A gateway of its own, with a pool of two connections per server and a 1 MiB answer limit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

POOL = 2
POOL_WAIT = 0.5
ANSWER_LIMIT = 1024 * 1024
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def small_gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("bounded-gateway")
    files = CatalogFiles()
    files.cluster("alpha")
    # The endpoint timeout of the report: 5 s, yet the third stream waited ~29 s.
    files.endpoint("alpha", "fake-model", backend.url, api_request_timeout=5)
    env = {
        "UPSTREAM_MAX_CONNECTIONS": str(POOL),
        "UPSTREAM_POOL_WAIT_SECONDS": str(POOL_WAIT),
        "UPSTREAM_MAX_RESPONSE_BYTES": str(ANSWER_LIMIT),
    }
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def small_client(small_gateway: GatewayServer) -> OpenAI:
    return small_gateway.openai_client()


def test_calls_beyond_the_pool_wait_a_bounded_time_then_get_503_busy(
    small_gateway: GatewayServer, small_client: OpenAI, backend: FakeBackend
) -> None:
    held = [f"hold-{uuid.uuid4().hex[:8]}" for _ in range(POOL)]
    with httpx2.Client(timeout=20) as http:
        streams = []
        for stream_id in held:
            body = {
                "model": "fake-model",
                "messages": HELLO,
                "stream": True,
                # 100 events 0.2 s apart: each holds its connection for 20 s.
                "fake": {"chunk_delay": 0.2, "chunks": 100, "id": stream_id},
            }
            stream = http.stream(
                "POST",
                f"{small_gateway.url}/resource_server/alpha/vllm/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {small_gateway.api_key}"},
            )
            response = stream.__enter__()
            assert response.status_code == 200
            # Kept: a dropped byte iterator closes its response.
            events = response.iter_bytes()
            next(events)  # the stream runs: its pooled connection is taken
            streams.append((stream, events))

        # A third stream and a plain call both find the pool full: 503 after the pool wait
        # (0.5 s), not after the endpoint's timeout or the client's 20 s.
        with pytest.raises(openai.APIStatusError) as streaming:
            small_client.chat.completions.create(model="fake-model", messages=HELLO, stream=True)
        with pytest.raises(openai.APIStatusError) as plain:
            small_client.chat.completions.create(model="fake-model", messages=HELLO)

        for caught in (streaming.value, plain.value):
            assert caught.status_code == 503
            assert caught.body["code"] == "upstream_busy"  # type: ignore[index]
            assert caught.response.headers["Retry-After"] == "1"
        for stream, _ in streams:
            stream.__exit__(None, None, None)

    for stream_id in held:
        assert backend.wait_for_stream_end(stream_id, timeout=10) == "aborted by client"
    answer = small_client.chat.completions.create(model="fake-model", messages=HELLO)
    assert answer.choices[0].message.content == "Echo: hello"


def _peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def test_an_answer_beyond_the_limit_is_502_and_is_not_read_whole(
    small_gateway: GatewayServer, small_client: OpenAI, backend: FakeBackend
) -> None:
    assert small_gateway.process is not None
    peak_before = _peak_rss_bytes(small_gateway.process.pid)
    call_id = f"huge-{uuid.uuid4().hex[:8]}"
    size = 50 * 1024 * 1024

    with pytest.raises(openai.APIStatusError) as caught:
        small_client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            extra_body={"fake": {"answer_bytes": size, "id": call_id}},
        )

    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_response_too_large"  # type: ignore[index]
    # The gateway hung up: the backend could write no more than socket buffers hold.
    assert backend.wait_for_call_end(call_id, timeout=10) == "abandoned by client"
    assert backend.sent[call_id] < size // 2
    # Reading the 50 MB answer (and joining it) would have raised the worker's peak by 50-100 MB.
    assert _peak_rss_bytes(small_gateway.process.pid) - peak_before < 20 * 1024 * 1024


def test_an_answer_within_the_limit_is_passed_on(small_client: OpenAI) -> None:
    answer = small_client.chat.completions.create(
        model="fake-model",
        messages=HELLO,
        extra_body={"fake": {"answer_bytes": ANSWER_LIMIT // 2}},
    )

    assert len(answer.choices[0].message.content or "") >= ANSWER_LIMIT // 2


def test_an_answer_declared_too_large_is_refused_before_reading(
    small_client: OpenAI, backend: FakeBackend
) -> None:
    call_id = f"declared-{uuid.uuid4().hex[:8]}"

    with pytest.raises(openai.APIStatusError) as caught:
        small_client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            extra_body={
                "fake": {"answer_bytes": 8 * ANSWER_LIMIT, "declare_length": True, "id": call_id}
            },
        )

    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_response_too_large"  # type: ignore[index]
    assert backend.wait_for_call_end(call_id, timeout=10) == "abandoned by client"
