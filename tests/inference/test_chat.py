"""Chat completions through the real gateway, called with the official openai client."""

from __future__ import annotations

import httpx2
import openai
import orjson
import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.inference.conftest import UNSET_KEY_VAR, UPSTREAM_KEY, ClientFactory
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hello there"}]


def test_chat_completion_answers_with_the_backend_answer(
    client: OpenAI, backend: FakeBackend
) -> None:
    answer = client.chat.completions.create(model="fake-model", messages=HELLO, max_tokens=5)

    assert answer.object == "chat.completion"
    assert answer.model == "fake-model"
    assert answer.choices[0].message.content == "Echo: hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2, 3)
    sent = backend.last
    assert sent.path == "/v1/chat/completions"
    assert sent.json == {"model": "fake-model", "messages": HELLO, "max_tokens": 5}


def test_the_callers_credential_is_not_passed_to_the_model_server(
    client: OpenAI, backend: FakeBackend, gateway: GatewayServer
) -> None:
    client.chat.completions.create(model="fake-model", messages=HELLO)

    headers = {name.lower(): value for name, value in backend.last.headers.items()}
    assert "authorization" not in headers
    assert gateway.api_key not in orjson.dumps(backend.last.headers).decode()


def test_model_name_is_matched_by_slug_and_rewritten_to_the_served_name(
    client: OpenAI, backend: FakeBackend
) -> None:
    answer = client.chat.completions.create(model="mixed-case/model-1.0", messages=HELLO)

    assert backend.last.json["model"] == "Mixed-Case/Model-1.0"
    assert answer.model == "Mixed-Case/Model-1.0"


def test_body_bytes_are_forwarded_unchanged_when_the_name_is_already_served(
    gateway: GatewayServer, backend: FakeBackend
) -> None:
    # Odd spacing and key order survive only if the gateway does not re-serialize.
    raw = (
        b'{ "messages" : [{"role":"user","content":"hi"}],\n  "model":"fake-model",'
        b'"temperature":0.25 }'
    )
    answer = httpx2.post(
        f"{gateway.url}/resource_server/alpha/vllm/v1/chat/completions",
        content=raw,
        headers={"Authorization": f"Bearer {gateway.api_key}", "Content-Type": "application/json"},
    )

    assert answer.status_code == 200, answer.text
    assert backend.last.body == raw


def test_vllm_fields_and_extra_body_are_forwarded_untouched(
    client: OpenAI, backend: FakeBackend
) -> None:
    extra = {
        "top_k": 20,
        "min_p": 0.05,
        "repetition_penalty": 1.1,
        "guided_json": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "guided_choice": ["yes", "no"],
        "chat_template_kwargs": {"enable_thinking": False},
        "skip_special_tokens": False,
        "some_future_field": [1, {"x": None}],
    }
    client.chat.completions.create(
        model="fake-model", messages=HELLO, temperature=0.7, top_p=0.9, extra_body=extra
    )

    sent = backend.last.json
    for name, value in extra.items():
        assert sent[name] == value
    assert (sent["temperature"], sent["top_p"]) == (0.7, 0.9)


def test_api_url_with_a_trailing_v1_reaches_the_same_path(
    client: OpenAI, backend: FakeBackend
) -> None:
    client.chat.completions.create(model="v1-suffix-model", messages=HELLO)

    assert backend.last.path == "/v1/chat/completions"
    assert backend.last.json["model"] == "v1-suffix-model"


def test_streaming_passes_chunks_through_and_ends_cleanly(
    client: OpenAI, backend: FakeBackend
) -> None:
    stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "one two three four"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three four"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert backend.last.json["stream"] is True


def test_streaming_response_headers_disable_buffering(gateway: GatewayServer) -> None:
    body = {"model": "fake-model", "messages": HELLO, "stream": True}
    with httpx2.stream(
        "POST",
        f"{gateway.url}/resource_server/alpha/vllm/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {gateway.api_key}"},
    ) as answer:
        raw = b"".join(answer.iter_bytes())

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["x-accel-buffering"] == "no"
    assert raw.startswith(b"data: {")
    assert raw.endswith(b"data: [DONE]\n\n")


def test_key_from_the_environment_is_sent_to_the_model_server(
    client: OpenAI, keyed_backend: FakeBackend
) -> None:
    answer = client.chat.completions.create(model="keyed-model", messages=HELLO)

    assert answer.choices[0].message.content == "Echo: hello there"
    assert keyed_backend.last.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_key_is_never_echoed_in_answers_or_logs(
    client: OpenAI, keyed_backend: FakeBackend, gateway: GatewayServer
) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(
            model="keyed-model", messages=HELLO, extra_body={"fake": {"status": 500}}
        )
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="keyed-model", messages=HELLO, extra_body={"fake": {"status": 400}}
        )

    for error in (failed.value, refused.value):
        assert UPSTREAM_KEY not in error.response.text
        assert UPSTREAM_KEY not in str(error.response.headers)
    assert UPSTREAM_KEY not in gateway.log_text()


def test_unset_key_variable_is_a_503_naming_the_variable(
    client: OpenAI, keyed_backend: FakeBackend
) -> None:
    before = len(keyed_backend.requests)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="unset-key-model", messages=HELLO)

    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"]
    error = caught.value.response.json()["error"]
    assert error["code"] == "endpoint_key_missing"
    assert error["type"] == "api_error"
    assert UNSET_KEY_VAR in error["message"]
    assert "'unset-key-model'" in error["message"] and "'alpha'" in error["message"]
    assert len(keyed_backend.requests) == before  # nothing was sent without a key


def test_cluster_scoped_model_list(make_client: ClientFactory) -> None:
    names = [model.id for model in make_client("beta").models.list()]

    assert names == ["beta-only-model", "failover-model", "fake-model"]
