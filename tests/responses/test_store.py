"""previous_response_id: refused (naming the setting) without the response store; with it, a
stored conversation is continued by its creator only, and the store keeps at most its bound."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import openai
import pytest

from tests.anthropic.fake_messages_backend import MessagesBackend
from tests.responses.conftest import CLUSTER, catalog
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

MAX_ENTRIES = 3


@pytest.fixture(scope="module")
def stored_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    native_backend: MessagesBackend,
    chat_backend: MessagesBackend,
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("responses-store")
    env = {
        "RESPONSES_STORE": "true",
        "RESPONSES_STORE_MAX_ENTRIES": str(MAX_ENTRIES),
        "RESPONSES_STORE_MAX_BYTES": "4096",
        # Its own keys in a shared Redis, so that other runs' responses do not count.
        "CACHE_KEY_PREFIX": f"store-test-{uuid.uuid4().hex[:8]}",
    }
    files = catalog(native_backend.url, chat_backend.url)
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def stored(stored_gateway: GatewayServer) -> openai.OpenAI:
    return stored_gateway.openai_client(f"/resource_server/{CLUSTER}/vllm/v1")


def test_refused_without_the_store(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="chat-model", input="more", previous_response_id="resp_1")

    assert caught.value.param == "previous_response_id"
    assert "RESPONSES_STORE" in caught.value.message


def test_continues_a_stored_conversation(
    stored: openai.OpenAI, chat_backend: MessagesBackend
) -> None:
    first = stored.responses.create(model="chat-model", input="first words")
    second = stored.responses.create(
        model="chat-model", input="second words", previous_response_id=first.id
    )

    sent = chat_backend.requests_to("/v1/chat/completions")[-1].json["messages"]
    assert sent == [
        {"role": "user", "content": "first words"},
        {"role": "assistant", "content": "Echo: first words"},
        {"role": "user", "content": "second words"},
    ]
    assert second.previous_response_id == first.id

    with stored.responses.stream(
        model="chat-model", input="third", previous_response_id=second.id
    ) as stream:
        streamed = stream.get_final_response()
    stored.responses.create(model="chat-model", input="fourth", previous_response_id=streamed.id)
    sent = chat_backend.requests_to("/v1/chat/completions")[-1].json["messages"]
    assert [m["content"] for m in sent][-3:] == ["third", "Echo: third", "fourth"]
    assert len(sent) == 7


def test_store_false_is_not_kept(stored: openai.OpenAI) -> None:
    response = stored.responses.create(model="chat-model", input="x", store=False)

    with pytest.raises(openai.NotFoundError):
        stored.responses.create(model="chat-model", input="y", previous_response_id=response.id)


def test_only_its_creator_may_continue(
    stored: openai.OpenAI, stored_gateway: GatewayServer
) -> None:
    response = stored.responses.create(model="chat-model", input="mine")
    other = openai.OpenAI(
        base_url=f"{stored_gateway.url}/resource_server/{CLUSTER}/vllm/v1",
        api_key=stored_gateway.create_api_key("someone-else"),
        max_retries=0,
        timeout=20,
    )

    with pytest.raises(openai.NotFoundError) as caught:
        other.responses.create(model="chat-model", input="y", previous_response_id=response.id)
    assert caught.value.param == "previous_response_id"
    stored.responses.create(model="chat-model", input="y", previous_response_id=response.id)


def test_the_store_keeps_at_most_its_entries(stored: openai.OpenAI) -> None:
    ids = [stored.responses.create(model="chat-model", input=f"n{n}").id for n in range(5)]

    kept = []
    for response_id in ids:
        try:
            stored.responses.create(
                model="chat-model", input="again", previous_response_id=response_id, store=False
            )
            kept.append(response_id)
        except openai.NotFoundError:
            pass
    assert kept == ids[-MAX_ENTRIES:]


def test_a_response_over_the_byte_bound_is_not_kept(stored: openai.OpenAI) -> None:
    response = stored.responses.create(model="chat-model", input="big " * 2000)

    with pytest.raises(openai.NotFoundError):
        stored.responses.create(model="chat-model", input="y", previous_response_id=response.id)
