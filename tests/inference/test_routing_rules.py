"""Federated routing's rules on a real gateway process with direct servers: a model's own limit
moves the request to the next cluster, a user's limit does not; `x-served-by` on every answer;
the optional vLLM `cache_salt`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hi"}]
OPERATIONS = ["chat/completions", "completions", "embeddings", "messages"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeBackend]:
    models = ("model-limited", "user-limited", "salted", "plain")
    with FakeBackend(models=models) as backend:
        yield backend


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, server: FakeBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("routing-rules")
    files = CatalogFiles()
    for cluster in ("one", "two"):
        files.cluster(cluster, operations=OPERATIONS)
        # The model's limit: one request a minute on each cluster.
        files.endpoint(cluster, "model-limited", server.url)
        files.endpoints[-1]["fields"]["rpm_model"] = 1
        # The user's limit: one request a minute for each user, on each cluster.
        files.endpoint(cluster, "user-limited", server.url)
        files.endpoints[-1]["fields"]["rpm_user"] = 1
    files.endpoint("one", "salted", server.url, messages_api="translate")
    files.cluster("llama", frameworks=["llama-cpp"], operations=OPERATIONS)
    files.endpoint("llama", "plain", server.url, framework="llama-cpp")
    env = {"VLLM_CACHE_SALT": "true", "REDIS_URL": ""}
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def federated(gateway: GatewayServer) -> OpenAI:
    return OpenAI(
        base_url=f"{gateway.url}/resource_server/v1", api_key=gateway.api_key, max_retries=0
    )


def served_by(client: OpenAI, model: str, session: str = "") -> str:
    headers = {"x-session-id": session} if session else {}
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=HELLO, extra_headers=headers
    )
    assert raw.parse().choices[0].message.content == "Echo: hi"
    return raw.headers["x-served-by"]


def test_a_models_limit_moves_the_request_to_the_next_cluster(federated: OpenAI) -> None:
    # One session: both requests try the same cluster first.
    first = served_by(federated, "model-limited", "s-1")
    second = served_by(federated, "model-limited", "s-1")

    assert {first, second} == {"one/vllm", "two/vllm"}
    with pytest.raises(openai.RateLimitError) as caught:  # both clusters' limits are spent
        federated.chat.completions.create(model="model-limited", messages=HELLO)
    assert caught.value.response.headers["Retry-After"]


def test_a_users_limit_is_final(federated: OpenAI) -> None:
    served_by(federated, "user-limited", "s-2")

    # The session's cluster refuses this user: the other cluster would admit, but a user's
    # limit is not a reason to spread one user over every cluster.
    with pytest.raises(openai.RateLimitError) as caught:
        federated.chat.completions.create(
            model="user-limited", messages=HELLO, extra_headers={"x-session-id": "s-2"}
        )

    assert caught.value.status_code == 429


def test_every_answer_says_where_it_was_served(gateway: GatewayServer) -> None:
    scoped = gateway.openai_client("/resource_server/llama/llama-cpp/v1")
    raw = scoped.chat.completions.with_raw_response.create(model="plain", messages=HELLO)
    assert raw.headers["x-served-by"] == "llama/llama-cpp"
    streamed = scoped.chat.completions.with_raw_response.create(
        model="plain", messages=HELLO, stream=True
    )
    assert streamed.headers["x-served-by"] == "llama/llama-cpp"
    assert "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)

    claude = anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server", api_key=gateway.api_key, max_retries=0
    )
    message = claude.messages.with_raw_response.create(
        model="salted", max_tokens=16, messages=[{"role": "user", "content": "x"}]
    )
    assert message.headers["x-served-by"] == "one/vllm"


def _body_of_last_chat(server: FakeBackend) -> dict[str, Any]:
    body: dict[str, Any] = server.requests_to("/v1/chat/completions")[-1].json
    return body


def test_vllm_requests_carry_a_per_principal_cache_salt(
    federated: OpenAI, gateway: GatewayServer, server: FakeBackend
) -> None:
    federated.chat.completions.create(model="salted", messages=HELLO)
    salt = _body_of_last_chat(server)["cache_salt"]
    federated.chat.completions.create(model="salted", messages=HELLO)
    assert _body_of_last_chat(server)["cache_salt"] == salt  # the same principal, the same salt

    other = OpenAI(
        base_url=f"{gateway.url}/resource_server/v1",
        api_key=gateway.create_api_key("other-user"),
        max_retries=0,
    )
    other.chat.completions.create(model="salted", messages=HELLO)
    assert _body_of_last_chat(server)["cache_salt"] not in ("", salt)

    federated.chat.completions.create(model="plain", messages=HELLO)  # llama-cpp: no salt
    assert "cache_salt" not in _body_of_last_chat(server)
    federated.embeddings.create(model="salted", input="e")  # not an operation that takes it
    assert "cache_salt" not in server.requests_to("/v1/embeddings")[-1].json
