"""Every way a Messages request fails, as the anthropic client sees it: status and body."""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import anthropic
import orjson
import pytest

from tests.anthropic.conftest import RESTING_NOTICE, ClientFactory
from tests.anthropic.fake_messages_backend import MessagesBackend
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

HELLO: list[Any] = [{"role": "user", "content": "hello there"}]
UNTRANSLATABLE = "cannot be sent to this model, whose server speaks only OpenAI chat/completions."


def failure(call: Callable[[], object]) -> tuple[int, Any]:
    with pytest.raises(anthropic.APIStatusError) as caught:
        call()
    return caught.value.status_code, caught.value.body


def anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def without_info(body: Any) -> Any:
    # Upstream errors carry an `info` object (cluster, model, upstream status) besides.
    body["error"].pop("info", None)
    return body


def raw_post(client: anthropic.Anthropic, body: dict[str, Any]) -> tuple[int, Any]:
    """POST a body the typed create() would refuse to send (a missing max_tokens, ...)."""
    return failure(lambda: client.post("/v1/messages", body=body, cast_to=object))


# --- requests the gateway refuses ---------------------------------------------------------


def test_missing_max_tokens(client: anthropic.Anthropic) -> None:
    status, body = raw_post(client, {"model": "chat-model", "messages": HELLO})
    assert status == 400
    assert body == anthropic_error("invalid_request_error", "max_tokens: Field required")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_tokens": 0}, "max_tokens: must be an integer >= 1, not 0"),
        ({"messages": []}, "messages: at least one message is required"),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            "messages.0.role: must be 'user', 'assistant' or 'system', not 'tool'",
        ),
        ({"model": ""}, "model: must be a non-empty string"),
    ],
)
def test_invalid_fields(client: anthropic.Anthropic, fields: dict[str, Any], message: str) -> None:
    body = {"model": "chat-model", "max_tokens": 10, "messages": HELLO, **fields}
    assert raw_post(client, body) == (400, anthropic_error("invalid_request_error", message))


def test_malformed_json(gateway: GatewayServer) -> None:
    request = urllib.request.Request(
        f"{gateway.url}/resource_server/anthro/vllm/v1/messages",
        data=b'{"model": "chat-model",',
        headers={"x-api-key": gateway.api_key, "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    body = orjson.loads(caught.value.read())
    assert caught.value.code == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("The request body is not valid JSON: ")


def test_get_is_not_allowed(gateway: GatewayServer) -> None:
    request = urllib.request.Request(
        f"{gateway.url}/resource_server/anthro/vllm/v1/messages",
        headers={"x-api-key": gateway.api_key},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 405
    assert orjson.loads(caught.value.read()) == anthropic_error(
        "api_error", "GET is not allowed on /resource_server/anthro/vllm/v1/messages."
    )


def test_bad_key_in_x_api_key(make_client: ClientFactory) -> None:
    client = make_client(api_key="igw_" + secrets.token_urlsafe(32))
    status, body = failure(
        lambda: client.messages.create(model="chat-model", max_tokens=5, messages=HELLO)
    )
    assert status == 401
    assert body == anthropic_error(
        "authentication_error",
        "The API key is unknown, expired or revoked. Ask your gateway operator for a new key.",
    )


def test_unknown_model(client: anthropic.Anthropic) -> None:
    status, body = failure(
        lambda: client.messages.create(model="no-such-model", max_tokens=5, messages=HELLO)
    )
    assert status == 404
    assert body["error"]["type"] == "not_found_error"
    assert body["error"]["message"].startswith(
        "Model 'no-such-model' is not served by 'vllm' on cluster 'anthro'. "
        "Models you may use there: "
    )
    assert "chat-model" in body["error"]["message"]


def test_unknown_model_federated(make_client: ClientFactory) -> None:
    client = make_client(cluster=None)
    status, body = failure(
        lambda: client.messages.create(model="no-such-model", max_tokens=5, messages=HELLO)
    )
    assert status == 404
    assert body["error"]["type"] == "not_found_error"
    assert body["error"]["message"].startswith("No cluster serves model 'no-such-model' to you.")


def test_cluster_that_does_not_offer_messages(make_client: ClientFactory) -> None:
    client = make_client(cluster="chatonly")
    status, body = failure(
        lambda: client.messages.create(model="chat-model", max_tokens=5, messages=HELLO)
    )
    assert status == 404
    assert body == anthropic_error(
        "not_found_error",
        "Cluster 'chatonly' does not offer /v1/messages. It offers: /v1/chat/completions.",
    )


def _calls_for(backend: MessagesBackend, model: str) -> int:
    return sum(1 for recorded in backend.requests if model.encode() in recorded.body)


def test_endpoint_the_caller_may_not_use_is_403(
    client: anthropic.Anthropic, native_backend: MessagesBackend
) -> None:
    before = _calls_for(native_backend, "restricted-model")
    status, body = failure(
        lambda: client.messages.create(model="restricted-model", max_tokens=5, messages=HELLO)
    )
    assert status == 403
    assert body["error"]["type"] == "permission_error"
    assert body["error"]["message"].startswith(
        "You are not allowed to use model 'restricted-model' on cluster 'anthro'."
    )
    assert _calls_for(native_backend, "restricted-model") == before


def test_cluster_under_maintenance_is_503_with_the_notice(
    make_client: ClientFactory, native_backend: MessagesBackend
) -> None:
    resting = make_client(cluster="resting")
    before = _calls_for(native_backend, "resting-model")
    status, body = failure(
        lambda: resting.messages.create(model="resting-model", max_tokens=5, messages=HELLO)
    )
    assert status == 503
    assert body["error"]["type"] == "api_error"
    assert body["error"]["message"] == RESTING_NOTICE
    assert _calls_for(native_backend, "resting-model") == before


def test_federated_model_only_on_a_cluster_under_maintenance_is_503(
    make_client: ClientFactory, native_backend: MessagesBackend
) -> None:
    federated = make_client(cluster=None)
    before = _calls_for(native_backend, "resting-model")
    status, body = failure(
        lambda: federated.messages.create(model="resting-model", max_tokens=5, messages=HELLO)
    )
    assert status == 503
    assert body["error"]["message"] == RESTING_NOTICE
    assert _calls_for(native_backend, "resting-model") == before


def test_what_chat_cannot_carry(client: anthropic.Anthropic) -> None:
    document: Any = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "x"},
    }
    status, body = failure(
        lambda: client.messages.create(
            model="chat-model",
            max_tokens=5,
            messages=[{"role": "user", "content": [document]}],
        )
    )
    assert status == 400
    assert body == anthropic_error(
        "invalid_request_error", f"messages.0.content.0: a 'document' block {UNTRANSLATABLE}"
    )


# --- model servers that fail ------------------------------------------------------------------


def test_native_mode_on_a_server_without_messages_keeps_its_404(
    client: anthropic.Anthropic,
) -> None:
    status, body = failure(
        lambda: client.messages.create(model="forced-native-model", max_tokens=5, messages=HELLO)
    )
    assert status == 404
    assert without_info(body) == anthropic_error("not_found_error", "Not Found")


@pytest.mark.parametrize("model", ["chat-model", "native-model"])
def test_upstream_5xx_is_502(client: anthropic.Anthropic, model: str) -> None:
    status, body = failure(
        lambda: client.messages.create(
            model=model, max_tokens=5, messages=HELLO, extra_body={"fake": {"status": 500}}
        )
    )
    assert status == 502
    assert without_info(body) == anthropic_error(
        "api_error",
        f"The model server for model '{model}' on cluster 'anthro' failed (HTTP 500): "
        "fake failure with status 500",
    )


def test_upstream_4xx_keeps_its_status(client: anthropic.Anthropic) -> None:
    status, body = failure(
        lambda: client.messages.create(
            model="chat-model", max_tokens=5, messages=HELLO, extra_body={"fake": {"status": 422}}
        )
    )
    assert status == 422
    assert without_info(body) == anthropic_error(
        "invalid_request_error", "fake failure with status 422"
    )


def test_malformed_chat_answer_is_502(client: anthropic.Anthropic) -> None:
    status, body = failure(
        lambda: client.messages.create(
            model="chat-model",
            max_tokens=5,
            messages=HELLO,
            extra_body={"fake": {"malformed": True}},
        )
    )
    assert status == 502
    assert without_info(body) == anthropic_error(
        "api_error",
        "The model server for model 'chat-model' on cluster 'anthro' failed: "
        "its answer is not JSON",
    )


def test_unreachable_server_is_503(gateway: GatewayServer, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="dead-model", max_tokens=5, messages=HELLO)
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "30"
    assert without_info(caught.value.body) == anthropic_error(
        "api_error",
        "The model server for model 'dead-model' on cluster 'anthro' cannot be reached. "
        "Try again later.",
    )


@pytest.mark.parametrize("model", ["chat-model", "native-model"])
def test_stream_cut_mid_way_ends_with_an_error_event(
    client: anthropic.Anthropic, model: str
) -> None:
    def consume() -> None:
        with client.messages.stream(
            model=model,
            max_tokens=50,
            messages=[{"role": "user", "content": "a b c d e f g"}],
            extra_body={"fake": {"stop_after": 3}},
        ) as stream:
            for _ in stream:
                pass

    _, body = failure(consume)
    assert without_info(body) == anthropic_error(
        "api_error",
        f"The stream from model '{model}' on cluster 'anthro' ended before it was complete.",
    )


def test_native_stream_without_message_stop_ends_with_an_error_event(
    client: anthropic.Anthropic,
) -> None:
    def consume() -> None:
        with client.messages.stream(
            model="native-model",
            max_tokens=50,
            messages=HELLO,
            extra_body={"fake": {"no_message_stop": True}},
        ) as stream:
            for _ in stream:
                pass

    _, body = failure(consume)
    assert without_info(body) == anthropic_error(
        "api_error",
        "The stream from model 'native-model' on cluster 'anthro' ended before it was complete.",
    )


def test_stream_refused_before_it_starts_is_an_http_error(client: anthropic.Anthropic) -> None:
    def consume() -> None:
        with client.messages.stream(
            model="chat-model",
            max_tokens=5,
            messages=HELLO,
            extra_body={"fake": {"status": 503}},
        ) as stream:
            for _ in stream:
                pass

    status, body = failure(consume)
    assert status == 502
    assert without_info(body) == anthropic_error(
        "api_error",
        "The model server for model 'chat-model' on cluster 'anthro' failed (HTTP 503): "
        "fake failure with status 503",
    )
