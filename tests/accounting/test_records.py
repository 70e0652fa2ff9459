"""One record per request, with the right fields: successes, upstream errors, refusals,
streams (usage the client asked for, usage the gateway asked for and took out), disconnects,
Anthropic Messages native and translated. Real gateway, official clients."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import anthropic
import httpx2 as httpx
import openai
import pytest

from tests.accounting.conftest import stream_bytes
from tests.fake_backend import FakeBackend
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

CHAT = "/resource_server/alpha/vllm/v1/chat/completions"
MESSAGES_BASE = "/resource_server/alpha/vllm"
RecordOf = Callable[[str], dict]


def _rid() -> str:
    return "test-" + uuid.uuid4().hex[:16]


def _post(gateway: GatewayServer, path: str, body: dict, request_id: str, **headers: str):
    return httpx.post(
        f"{gateway.url}{path}",
        json=body,
        headers={
            "Authorization": f"Bearer {gateway.api_key}",
            "x-request-id": request_id,
            **headers,
        },
        timeout=20,
    )


def test_success_is_recorded_with_principal_endpoint_timings_and_tokens(
    gateway: GatewayServer, record_of: RecordOf
) -> None:
    rid = _rid()
    client = gateway.openai_client()
    raw = client.chat.completions.with_raw_response.create(
        model="fake-model",
        messages=[{"role": "user", "content": "one two three"}],
        extra_headers={"x-request-id": rid, "x-forwarded-for": "203.0.113.7"},
    )
    answer = raw.parse()
    assert raw.headers["x-request-id"] == rid
    timing = raw.headers["server-timing"]
    assert timing.startswith("gateway;dur=") and ", upstream;dur=" in timing
    record = record_of(rid)
    assert record["status"] == 200 and record["error_code"] == ""
    assert record["route"] == "cluster" and record["operation"] == "chat/completions"
    assert (record["cluster"], record["framework"], record["model"]) == (
        "alpha",
        "vllm",
        "fake-model",
    )
    assert record["endpoint_slug"] == "alpha-vllm-fake-model"
    assert record["credential"] == "api_key" and record["api_key_id"] is not None
    assert record["principal_id"] == f"api_key:{record['api_key_id']}"
    # The peer (127.0.0.1) is a trusted proxy: the forwarded address is the client's.
    assert record["client_address"] == "203.0.113.7"
    assert answer.usage is not None
    assert record["prompt_tokens"] == answer.usage.prompt_tokens
    assert record["completion_tokens"] == answer.usage.completion_tokens
    assert record["total_tokens"] == answer.usage.total_tokens
    assert not record["usage_estimated"] and not record["stream"] and not record["disconnected"]
    assert 0 < record["upstream_duration"] <= record["duration"]
    assert 0 < record["time_to_first_token"] <= record["duration"]
    assert record["prompt"] == "" and record["answer"] == ""  # RECORD_PROMPTS is off


def test_a_new_request_id_when_the_client_sends_none_or_an_unsafe_one(
    gateway: GatewayServer, record_of: RecordOf
) -> None:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    unsafe = _post(gateway, CHAT, body, "bad id\twith spaces")
    rid = unsafe.headers["x-request-id"]
    assert unsafe.status_code == 200 and rid != "bad id\twith spaces" and len(rid) == 32
    assert record_of(rid)["status"] == 200


def test_federated_request_records_the_chosen_endpoint(
    gateway: GatewayServer, record_of: RecordOf
) -> None:
    rid = _rid()
    body = {"model": "fake-model", "input": ["alpha beta gamma"]}
    answer = _post(gateway, "/resource_server/v1/embeddings", body, rid)
    assert answer.status_code == 200
    record = record_of(rid)
    assert record["route"] == "federated" and record["operation"] == "embeddings"
    assert record["cluster"] == "alpha" and record["endpoint_slug"] == "alpha-vllm-fake-model"
    assert record["prompt_tokens"] == answer.json()["usage"]["prompt_tokens"]


@pytest.mark.parametrize(("upstream", "status"), [(422, 422), (500, 502)])
def test_upstream_errors_are_recorded_with_their_code(
    gateway: GatewayServer, record_of: RecordOf, upstream: int, status: int
) -> None:
    rid = _rid()
    body = {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "hi"}],
        "fake": {"status": upstream},
    }
    answer = _post(gateway, CHAT, body, rid)
    assert answer.status_code == status
    assert answer.headers["x-request-id"] == rid
    record = record_of(rid)
    assert record["status"] == status
    assert record["error_code"] == answer.json()["error"]["code"]
    assert record["endpoint_slug"] == "alpha-vllm-fake-model"
    assert record["upstream_duration"] is not None and record["total_tokens"] is None


def test_an_authentication_failure_is_recorded_without_a_principal(
    gateway: GatewayServer, record_of: RecordOf
) -> None:
    rid = _rid()
    answer = httpx.post(
        f"{gateway.url}{CHAT}",
        json={"model": "fake-model", "messages": []},
        headers={"Authorization": "Bearer igw_not_a_real_key", "x-request-id": rid},
    )
    assert answer.status_code == 401
    assert answer.headers["x-request-id"] == rid and "server-timing" in answer.headers
    record = record_of(rid)
    assert record["status"] == 401 and record["error_code"] == answer.json()["error"]["code"]
    assert record["principal_id"] == "" and record["credential"] == ""
    assert record["model"] == "" and record["upstream_duration"] is None


def _stream_bytes(gateway: GatewayServer, body: dict, rid: str) -> bytes:
    return stream_bytes(gateway, CHAT, body, rid)


def _stream_body(model: str, **extra: object) -> dict:
    return {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "count these five words"}],
        "fake": {"fixed_id": True},
        **extra,
    }


def test_stream_with_usage_the_client_asked_for(
    gateway: GatewayServer, record_of: RecordOf
) -> None:
    rid = _rid()
    raw = _stream_bytes(
        gateway, _stream_body("fake-model", stream_options={"include_usage": True}), rid
    )
    assert b'"usage"' in raw  # the client asked: it gets the chunk
    record = record_of(rid)
    assert record["stream"] and record["status"] == 200
    assert (record["prompt_tokens"], record["completion_tokens"]) == (4, 5)
    assert not record["usage_estimated"]


def test_stream_usage_asked_by_the_gateway_is_taken_out_byte_for_byte(
    gateway: GatewayServer, backend: FakeBackend, record_of: RecordOf
) -> None:
    asked, quiet = _rid(), _rid()
    through_gateway = _stream_bytes(gateway, _stream_body("fake-model"), asked)
    sent = backend.last.json
    assert sent["stream_options"] == {"include_usage": True}
    # The same stream from a server that was not asked for usage (quiet-model's config).
    without_usage = _stream_bytes(gateway, _stream_body("quiet-model"), quiet)
    assert "stream_options" not in backend.last.json
    assert through_gateway == without_usage.replace(b"quiet-model", b"fake-model")
    assert b'"usage"' not in through_gateway
    record = record_of(asked)
    assert (record["prompt_tokens"], record["completion_tokens"]) == (4, 5)
    assert not record["usage_estimated"]
    estimated = record_of(quiet)
    # Estimated: one token per chunk, the role chunk too.
    assert estimated["usage_estimated"] and estimated["completion_tokens"] == 6


def test_a_server_that_refuses_stream_options_is_learned_and_estimated(
    gateway: GatewayServer, backend: FakeBackend, record_of: RecordOf
) -> None:
    rid = _rid()
    body = _stream_body("fake-model")
    body["fake"] = {"refuse_stream_options": True}
    raw = _stream_bytes(gateway, body, rid)
    assert b"data: [DONE]" in raw
    assert "stream_options" not in backend.last.json  # asked again without them
    record = record_of(rid)
    assert record["status"] == 200 and record["usage_estimated"]
    assert record["completion_tokens"] and record["completion_tokens"] > 0


def test_a_client_that_disconnects_mid_stream(
    gateway: GatewayServer, backend: FakeBackend, record_of: RecordOf
) -> None:
    rid = _rid()
    body = _stream_body("quiet-model")
    body["fake"] = {"chunks": 50, "chunk_delay": 0.1}
    with httpx.stream(
        "POST",
        f"{gateway.url}{CHAT}",
        json=body,
        headers={"Authorization": f"Bearer {gateway.api_key}", "x-request-id": rid},
        timeout=20,
    ) as answer:
        next(answer.iter_bytes())
    record = record_of(rid)
    assert record["disconnected"] and record["stream"]
    assert record["status"] == 200 and record["error_code"] == "client_disconnected"


def _anthropic(gateway: GatewayServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=f"{gateway.url}{MESSAGES_BASE}", api_key=gateway.api_key, max_retries=0
    )


@pytest.mark.parametrize("model", ["fake-model", "native-model"])
def test_anthropic_messages_native_and_translated(
    gateway: GatewayServer, record_of: RecordOf, model: str
) -> None:
    client = _anthropic(gateway)
    rid = _rid()
    message = client.messages.create(
        model=model,
        max_tokens=50,
        messages=[{"role": "user", "content": "three small words"}],
        extra_headers={"x-request-id": rid},
    )
    record = record_of(rid)
    assert record["operation"] == "messages" and record["status"] == 200
    assert record["prompt_tokens"] == message.usage.input_tokens
    assert record["completion_tokens"] == message.usage.output_tokens

    rid = _rid()
    with client.messages.stream(
        model=model,
        max_tokens=50,
        messages=[{"role": "user", "content": "three small words"}],
        extra_headers={"x-request-id": rid},
    ) as stream:
        final = stream.get_final_message()
    record = record_of(rid)
    assert record["stream"] and record["status"] == 200
    assert record["completion_tokens"] == final.usage.output_tokens
    assert record["prompt_tokens"] == final.usage.input_tokens


def test_openai_client_errors_still_carry_the_request_id(gateway: GatewayServer) -> None:
    client = gateway.openai_client()
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.response.headers["x-request-id"]
