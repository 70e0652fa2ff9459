"""Streams that go wrong after they started: they end with an error event, never hang."""

from __future__ import annotations

import time
import uuid

import openai
import orjson
import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "tell me a long story"}]


def test_model_server_dying_mid_stream_ends_with_an_error_event(
    gateway: GatewayServer, backend: FakeBackend
) -> None:
    events = gateway.sse_events(
        "/resource_server/alpha/vllm/v1/chat/completions",
        {"model": "fake-model", "messages": HELLO, "stream": True, "fake": {"stop_after": 3}},
    )

    assert len(events) == 4  # three chunks passed through, then the error
    assert all(event.startswith(b'data: {"id"') for event in events[:3])
    assert orjson.loads(events[-1].removeprefix(b"data: ")) == {
        "error": {
            "message": "The stream from model 'fake-model' on cluster 'alpha' ended before it "
            "was complete.",
            "type": "api_error",
            "param": None,
            "code": "upstream_stream_interrupted",
            "info": {"cluster": "alpha", "model": "fake-model"},
        }
    }


def test_openai_client_raises_on_the_error_event(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-model",
        messages=HELLO,
        stream=True,
        extra_body={"fake": {"stop_after": 2}},
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)

    assert len(received) == 2
    assert "ended before it was complete" in caught.value.message


def test_stream_ending_without_done_is_reported(gateway: GatewayServer) -> None:
    events = gateway.sse_events(
        "/resource_server/alpha/vllm/v1/chat/completions",
        {"model": "fake-model", "messages": HELLO, "stream": True, "fake": {"no_done": True}},
    )

    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "upstream_stream_interrupted"
    assert b"[DONE]" not in b"".join(events)


def test_stalled_stream_ends_with_a_timeout_event(gateway: GatewayServer) -> None:
    started = time.monotonic()
    events = gateway.sse_events(
        "/resource_server/alpha/vllm/v1/chat/completions",
        {
            "model": "slow-model",
            "messages": HELLO,
            "stream": True,
            "fake": {"chunk_delay": 3},
        },
    )

    assert time.monotonic() - started < 2.5
    assert events[0].startswith(b'data: {"id"')
    assert orjson.loads(events[-1].removeprefix(b"data: ")) == {
        "error": {
            "message": "The stream from model 'slow-model' on cluster 'alpha' sent nothing "
            "for 0.5 s.",
            "type": "api_error",
            "param": None,
            "code": "upstream_timeout",
            "info": {"cluster": "alpha", "model": "slow-model"},
        }
    }


def test_slow_stream_within_the_timeout_is_passed_through(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="slow-model",
        messages=[{"role": "user", "content": "a b c"}],
        stream=True,
        extra_body={"fake": {"chunk_delay": 0.1}},
    )

    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Echo: a b c"


def test_a_stream_longer_than_the_timeout_that_never_falls_silent_is_whole(
    client: OpenAI,
) -> None:
    # slow-model's bound on silence is 0.5 s (upstream/silence.py): 8 events 0.2 s apart.
    started = time.monotonic()
    stream = client.chat.completions.create(
        model="slow-model",
        messages=HELLO,
        stream=True,
        extra_body={"fake": {"chunk_delay": 0.2, "chunks": 8}},
    )
    finishes = [c.choices[0].finish_reason for c in stream if c.choices]

    assert time.monotonic() - started > 1.4
    assert len(finishes) >= 8
    assert finishes[-1] == "stop"


def test_client_disconnect_cancels_the_upstream_request(
    client: OpenAI, backend: FakeBackend
) -> None:
    stream_id = f"disconnect-{uuid.uuid4().hex[:8]}"
    stream = client.chat.completions.create(
        model="fake-model",
        messages=HELLO,
        stream=True,
        # 100 chunks 0.1 s apart: 10 s if the gateway kept reading after the client left.
        extra_body={"fake": {"chunk_delay": 0.1, "chunks": 100, "id": stream_id}},
    )
    for index, _ in enumerate(stream):
        if index == 2:
            break
    started = time.monotonic()
    stream.close()

    assert backend.wait_for_stream_end(stream_id, timeout=5) == "aborted by client"
    assert time.monotonic() - started < 3
