"""Completions, embeddings and responses through the gateway, streaming where the API streams."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.inference.conftest import ClientFactory

pytestmark = pytest.mark.e2e


def test_completions(client: OpenAI, backend: FakeBackend) -> None:
    answer = client.completions.create(model="fake-model", prompt="Once upon", max_tokens=4)

    assert answer.object == "text_completion"
    assert answer.choices[0].text == " Echo: Once upon"
    assert answer.usage is not None and answer.usage.prompt_tokens == 2
    assert backend.last.path == "/v1/completions"
    assert backend.last.json == {"model": "fake-model", "prompt": "Once upon", "max_tokens": 4}


def test_streamed_completions(client: OpenAI) -> None:
    stream = client.completions.create(model="fake-model", prompt="a b", stream=True)

    text = "".join(chunk.choices[0].text for chunk in stream)
    assert text == " Echo: a b"


def test_embeddings(client: OpenAI, backend: FakeBackend) -> None:
    answer = client.embeddings.create(model="fake-model", input=["first text", "second"])

    assert [item.index for item in answer.data] == [0, 1]
    assert all(len(item.embedding) == 8 for item in answer.data)
    assert answer.data[0].embedding != answer.data[1].embedding
    assert answer.usage.prompt_tokens == 3
    assert backend.last.path == "/v1/embeddings"
    assert backend.last.json["input"] == ["first text", "second"]


def test_embeddings_as_floats_with_dimensions(client: OpenAI, backend: FakeBackend) -> None:
    answer = client.embeddings.create(
        model="fake-model", input="text", encoding_format="float", dimensions=4
    )

    assert len(answer.data[0].embedding) == 4
    assert backend.last.json["encoding_format"] == "float"


def test_responses(client: OpenAI, backend: FakeBackend) -> None:
    answer = client.responses.create(model="fake-model", input="what is up", max_output_tokens=9)

    assert answer.object == "response"
    assert answer.status == "completed"
    assert answer.output_text == "Echo: what is up"
    assert backend.last.path == "/v1/responses"
    assert backend.last.json["max_output_tokens"] == 9


def test_streamed_responses(client: OpenAI) -> None:
    events = list(client.responses.create(model="fake-model", input="x y", stream=True))

    kinds = [event.type for event in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Echo: x y"


def test_operation_the_cluster_does_not_offer_is_404_naming_what_it_offers(
    make_client: ClientFactory, backend: FakeBackend
) -> None:
    before = len(backend.requests)
    with pytest.raises(openai.NotFoundError) as caught:
        make_client("beta").embeddings.create(model="fake-model", input="x")

    assert caught.value.response.json() == {
        "error": {
            "message": "Cluster 'beta' does not offer /v1/embeddings. "
            "It offers: /v1/chat/completions.",
            "type": "not_found_error",
            "param": None,
            "code": "operation_not_offered",
        }
    }
    assert len(backend.requests) == before


def test_streaming_flag_is_ignored_by_operations_that_do_not_stream(
    client: OpenAI, backend: FakeBackend
) -> None:
    answer = client.embeddings.create(
        model="fake-model", input="x", encoding_format="float", extra_body={"stream": True}
    )

    assert len(answer.data[0].embedding) == 8
    assert backend.last.json["stream"] is True  # forwarded, the server decides
