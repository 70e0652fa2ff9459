"""The Anthropic client's other routes through the real gateway: models.list in Anthropic's
shape, Anthropic-shaped 404/405 under /v1/messages, and x-api-key on the OpenAI routes too."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from tests.anthropic.conftest import ClientFactory
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

ANTHRO_MODELS = [
    "chat-model",
    "cpp-count-model",
    "dead-model",
    "forced-native-model",
    "lost-count-model",
    "native-model",
    "text-count-model",
    "translate-model",
]


def test_models_list_with_the_anthropic_client(client: anthropic.Anthropic) -> None:
    models = list(client.models.list(limit=3))  # the client follows the pages

    assert [model.id for model in models] == ANTHRO_MODELS  # restricted-model is not ours
    first = models[0]
    assert (first.type, first.display_name) == ("model", "chat-model")
    assert first.created_at.year == 1970


def test_a_models_page_has_anthropics_paging_fields(client: anthropic.Anthropic) -> None:
    page = client.models.list(limit=2, after_id="chat-model")

    assert [model.id for model in page.data] == ANTHRO_MODELS[1:3]
    assert (page.first_id, page.last_id, page.has_more) == (
        "cpp-count-model",
        "dead-model",
        True,
    )
    before = client.models.list(limit=2, before_id="dead-model")
    assert [model.id for model in before.data] == ANTHRO_MODELS[:2]
    assert before.has_more is False


def test_federated_models_list_and_a_bad_limit(make_client: ClientFactory) -> None:
    federated = make_client(cluster=None)

    names = [model.id for model in federated.models.list(limit=100)]
    assert set(ANTHRO_MODELS) < set(names)
    assert "resting-model" in names
    with pytest.raises(anthropic.BadRequestError) as caught:
        federated.models.list(limit=0)
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "limit: must be an integer between 1 and 1000, not '0'",
        },
    }


def test_the_openai_shape_without_anthropic_version(gateway: GatewayServer) -> None:
    openai = gateway.openai_client("/resource_server/anthro/vllm/v1")

    models = openai.models.list()
    assert [model.id for model in models.data] == ANTHRO_MODELS
    assert models.data[0].object == "model"


@pytest.mark.parametrize(
    "path",
    [
        "/resource_server/anthro/vllm/v1/messages/batches",
        "/resource_server/v1/messages/nothing/here",
        "/resource_server/anthro/vllm/v1/messages/count_tokens/x",
    ],
)
def test_unknown_routes_under_messages_are_anthropic_shaped(
    gateway: GatewayServer, path: str
) -> None:
    answer = httpx2.post(
        f"{gateway.url}{path}", headers={"x-api-key": gateway.api_key}, json={}, timeout=10
    )

    assert answer.status_code == 404
    assert answer.json() == {
        "type": "error",
        "error": {"type": "not_found_error", "message": f"No route POST {path}."},
    }


def test_a_wrong_method_on_count_tokens_is_anthropic_shaped(gateway: GatewayServer) -> None:
    path = "/resource_server/v1/messages/count_tokens"
    answer = httpx2.get(f"{gateway.url}{path}", headers={"x-api-key": gateway.api_key}, timeout=10)

    assert answer.status_code == 405
    assert answer.json() == {
        "type": "error",
        "error": {"type": "api_error", "message": f"GET is not allowed on {path}."},
    }


def test_a_missing_key_on_messages_names_x_api_key(gateway: GatewayServer) -> None:
    answer = httpx2.post(
        f"{gateway.url}/resource_server/anthro/vllm/v1/messages/count_tokens",
        json={"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )

    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["type"] == "authentication_error"
    assert "x-api-key" in error["message"]


def test_x_api_key_on_whoami_chat_completions_and_models(gateway: GatewayServer) -> None:
    # The key only as x-api-key, as Claude Code sends it (this anthropic client sends a bearer
    # token for api_key, so the header is set by hand and no api_key is given).
    client = anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server/anthro/vllm",
        api_key=None,
        default_headers={"x-api-key": gateway.api_key},
        max_retries=0,
        timeout=20,
    )
    assert client.auth_headers == {}
    whoami = client.get(f"{gateway.url}/resource_server/whoami", cast_to=object)
    assert isinstance(whoami, dict) and whoami["username"] == "e2e"
    chat = client.post(
        "/v1/chat/completions",
        body={"model": "chat-model", "messages": [{"role": "user", "content": "hi"}]},
        cast_to=object,
    )
    assert isinstance(chat, dict) and chat["choices"][0]["message"]["content"] == "Echo: hi"
    assert [model.id for model in client.models.list(limit=100)] == ANTHRO_MODELS
    counted = client.messages.count_tokens(
        model="chat-model", messages=[{"role": "user", "content": "hi there"}]
    )
    assert counted.input_tokens == 2
