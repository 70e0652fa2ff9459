"""Token counts of completions streams (usage the gateway asked for and took out, byte for
byte as for chat) and of the Responses API, native and translated, plain and streamed. Real
gateway, official openai client."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.accounting.conftest import stream_bytes
from tests.fake_backend import FakeBackend
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

COMPLETIONS = "/resource_server/alpha/vllm/v1/completions"
RecordOf = Callable[[str], dict]


def _rid() -> str:
    return "streams-" + uuid.uuid4().hex[:16]


def _completions_stream(gateway: GatewayServer, model: str, rid: str, **extra: object) -> bytes:
    body = {
        "model": model,
        "prompt": "count these four",
        "stream": True,
        "fake": {"fixed_id": True},
        **extra,
    }
    return stream_bytes(gateway, COMPLETIONS, body, rid)


def test_completions_stream_usage_the_client_asked_for(
    gateway: GatewayServer, record_of: RecordOf
) -> None:
    rid = _rid()
    raw = _completions_stream(gateway, "counted-model", rid, stream_options={"include_usage": True})
    assert b'"usage"' in raw
    record = record_of(rid)
    # "Echo: count these four" is four words back for three in.
    assert (record["prompt_tokens"], record["completion_tokens"]) == (3, 4)
    assert record["stream"] and not record["usage_estimated"]


def test_completions_stream_usage_asked_by_the_gateway_is_taken_out_byte_for_byte(
    gateway: GatewayServer, backend: FakeBackend, record_of: RecordOf
) -> None:
    asked, quiet = _rid(), _rid()
    through_gateway = _completions_stream(gateway, "counted-model", asked)
    assert backend.last.json["stream_options"] == {"include_usage": True}
    without_usage = _completions_stream(gateway, "quiet-model", quiet)
    assert "stream_options" not in backend.last.json
    assert through_gateway == without_usage.replace(b"quiet-model", b"counted-model")
    assert b'"usage"' not in through_gateway and through_gateway.endswith(b"data: [DONE]\n\n")
    record = record_of(asked)
    assert (record["prompt_tokens"], record["completion_tokens"]) == (3, 4)
    assert not record["usage_estimated"]
    assert record_of(quiet)["usage_estimated"]


@pytest.mark.parametrize("model", ["fake-model", "chat-model"])  # native, translated
def test_responses_are_recorded_with_their_usage(
    gateway: GatewayServer, backend: FakeBackend, record_of: RecordOf, model: str
) -> None:
    client = gateway.openai_client()
    rid = _rid()
    response = client.responses.create(
        model=model, input="three words here", extra_headers={"x-request-id": rid}
    )
    path = backend.last.path
    assert path == ("/v1/responses" if model == "fake-model" else "/v1/chat/completions")
    assert response.usage is not None
    record = record_of(rid)
    assert record["operation"] == "responses" and record["status"] == 200
    assert not record["stream"] and record["endpoint_slug"] == f"alpha-vllm-{model}"
    assert record["prompt_tokens"] == response.usage.input_tokens
    assert record["completion_tokens"] == response.usage.output_tokens
    assert record["total_tokens"] == response.usage.total_tokens


@pytest.mark.parametrize("model", ["fake-model", "chat-model"])  # native, translated
def test_responses_streams_are_recorded_with_their_usage(
    gateway: GatewayServer, backend: FakeBackend, record_of: RecordOf, model: str
) -> None:
    client = gateway.openai_client()
    rid = _rid()
    with client.responses.stream(
        model=model,
        input="three words here",
        extra_headers={"x-request-id": rid},
        extra_body={"fake": {"chunks": 12}},
    ) as stream:
        final = stream.get_final_response()
    sent = backend.last
    assert sent.path == ("/v1/responses" if model == "fake-model" else "/v1/chat/completions")
    assert final.usage is not None and final.usage.output_tokens >= 12
    record = record_of(rid)
    assert record["operation"] == "responses" and record["stream"] and record["status"] == 200
    # Native: the response.completed event's usage; translated: the chat stream's usage chunk.
    assert record["prompt_tokens"] == final.usage.input_tokens
    assert record["completion_tokens"] == final.usage.output_tokens
    assert not record["usage_estimated"]
    assert record["time_to_first_token"] is not None
