"""Model-server faults reach the caller as clear errors and the operator as one log line each;
a caller that gives up frees the model server at once."""

from __future__ import annotations

import time
import uuid

import httpx2
import openai
import orjson
import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "tell me a story"}]
CHAT_URL = "/resource_server/alpha/vllm/v1/chat/completions"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/home/svc/venv/lib/python3.11/site-packages/llama_cpp/server/app.py", line 376, '
    "in create_chat_completion\n"
    "    raise ValueError(msg)\n"
    "ValueError: Requested tokens (3100) exceed context window of 2048 "
    "(model /srv/models/smollm2.gguf)"
)


def wait_for_log_lines(gateway: GatewayServer, needle: str, timeout: float = 10.0) -> list[str]:
    """The log lines naming `needle`, once there is at least one (the log is another process's)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in gateway.log_text().splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


# --- item 10: [DONE] only for a whole stream ------------------------------------------------


def test_done_without_a_finish_reason_ends_with_an_error_instead(gateway: GatewayServer) -> None:
    events = gateway.sse_events(
        CHAT_URL,
        {"model": "fake-model", "messages": HELLO, "stream": True, "fake": {"no_finish": True}},
    )

    assert b"[DONE]" not in b"".join(events)
    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "upstream_stream_interrupted"
    assert "no finish reason" in last["error"]["message"]


def test_openai_client_raises_instead_of_returning_an_empty_answer(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-model", messages=HELLO, stream=True, extra_body={"fake": {"no_finish": True}}
    )

    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "incomplete" in caught.value.message


def test_completions_stream_without_finish_reason_is_reported(gateway: GatewayServer) -> None:
    events = gateway.sse_events(
        "/resource_server/alpha/vllm/v1/completions",
        {"model": "fake-model", "prompt": "a b", "stream": True, "fake": {"no_finish": True}},
    )

    assert b"[DONE]" not in b"".join(events)
    assert b"upstream_stream_interrupted" in events[-1]


def test_whole_stream_ends_with_exactly_one_done(gateway: GatewayServer) -> None:
    events = gateway.sse_events(
        CHAT_URL,
        {"model": "fake-model", "messages": HELLO, "stream": True, "fake": {"chunks": 20}},
    )

    assert events[-1] == b"data: [DONE]"
    assert sum(event == b"data: [DONE]" for event in events) == 1
    assert b'"finish_reason":"stop"' in events[-2]


# --- item 11: 5xx messages cleaned, 4xx kept ------------------------------------------------


def test_server_failure_message_loses_traceback_and_paths(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            extra_body={"fake": {"status": 500, "message": TRACEBACK}},
        )

    error = caught.value
    assert error.status_code == 502
    message = error.message
    assert "ValueError: Requested tokens (3100) exceed context window of 2048" in message
    for leak in ('File "', "line 376", "/home/svc", "site-packages", "/srv/models", "raise "):
        assert leak not in message
    assert len(message) < 400


def test_client_error_message_is_kept_as_the_server_wrote_it(client: OpenAI) -> None:
    text = "prompt too long for /v1/chat/completions: 3100 > 2048 tokens"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            extra_body={"fake": {"status": 400, "message": text}},
        )

    assert caught.value.body["message"] == text  # type: ignore[index]


# --- item 12: one WARNING line per failure, with ids, never the body --------------------------


def test_upstream_failure_is_logged_once_without_its_body(
    gateway: GatewayServer, client: OpenAI
) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    secret = f"body-{uuid.uuid4().hex}"
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            extra_body={"fake": {"status": 503, "message": secret}},
            extra_headers={"x-request-id": request_id},
        )

    lines = wait_for_log_lines(gateway, request_id)
    assert len(lines) == 1
    line = lines[0]
    assert " WARNING " in line
    for part in ("cluster=alpha", "model=fake-model", "code=upstream_error", "upstream_status=503"):
        assert part in line
    assert secret not in gateway.log_text()


def test_cut_stream_is_logged_once(gateway: GatewayServer, client: OpenAI) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    stream = client.chat.completions.create(
        model="fake-model",
        messages=HELLO,
        stream=True,
        extra_body={"fake": {"stop_after": 2}},
        extra_headers={"x-request-id": request_id},
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass

    lines = wait_for_log_lines(gateway, request_id)
    assert len(lines) == 1
    assert " WARNING " in lines[0]
    assert "stream cut" in lines[0]
    assert "code=upstream_stream_interrupted" in lines[0]
    assert "cluster=alpha" in lines[0] and "model=fake-model" in lines[0]


def test_client_mistakes_are_not_logged_as_upstream_failures(
    gateway: GatewayServer, client: OpenAI
) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            extra_body={"fake": {"status": 400}},
            extra_headers={"x-request-id": request_id},
        )
    # A later failure's line proves the log was written past the 400.
    marker = f"req-{uuid.uuid4().hex}"
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            model="fake-model",
            messages=HELLO,
            extra_body={"fake": {"status": 500}},
            extra_headers={"x-request-id": marker},
        )

    assert wait_for_log_lines(gateway, marker)
    # The per-request line (REQUEST_LOG, written by its thread every 0.2 s) names every
    # request; no upstream-failure line may name this one.
    failures = [line for line in gateway.log_text().splitlines() if "upstream failure" in line]
    assert any(marker in line for line in failures)
    assert not any(request_id in line for line in failures)


# --- item 9: a caller that hangs up cancels the call ----------------------------------------


def test_client_hanging_up_cancels_the_upstream_call(
    gateway: GatewayServer, backend: FakeBackend
) -> None:
    call_id = f"hangup-{uuid.uuid4().hex[:8]}"
    body = {"model": "fake-model", "messages": HELLO, "fake": {"delay": 60, "id": call_id}}
    with httpx2.Client(timeout=10) as http, pytest.raises(httpx2.ReadTimeout):
        http.post(
            f"{gateway.url}{CHAT_URL}",
            json=body,
            headers={"Authorization": f"Bearer {gateway.api_key}"},
            timeout=httpx2.Timeout(10, read=0.5),
        )
    # httpx dropped the connection on its timeout; the backend must see the gateway's go too,
    # long before its 60 s delay (and the endpoint's 120 s timeout).
    assert backend.wait_for_call_end(call_id, timeout=10) == "abandoned by client"


def test_client_hanging_up_on_a_federated_route_cancels_the_upstream_call(
    gateway: GatewayServer, backend: FakeBackend
) -> None:
    call_id = f"hangup-{uuid.uuid4().hex[:8]}"
    body = {"model": "beta-only-model", "messages": HELLO, "fake": {"delay": 60, "id": call_id}}
    with httpx2.Client(timeout=10) as http, pytest.raises(httpx2.ReadTimeout):
        http.post(
            f"{gateway.url}/resource_server/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {gateway.api_key}"},
            timeout=httpx2.Timeout(10, read=0.5),
        )

    assert backend.wait_for_call_end(call_id, timeout=10) == "abandoned by client"
