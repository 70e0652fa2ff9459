"""Two fake model servers (one with /v1/responses, one chat-only) and one real gateway in front.

resp (vllm; chat/completions, responses)
    native-model         server with /v1/responses, responses_api auto -> passed through
    chat-model           chat-only server, auto                        -> 404 once, translated
    translate-model      server with /v1/responses, translate          -> translated all the same
    forced-native-model  chat-only server, native                      -> the server's 404
    strict-model         chat-only server, translate, hosted tools refused
chatonly (vllm; chat/completions)   only-chat-model      -> /v1/responses not offered

Both servers' chat/completions call the first tool when given tools (tests/anthropic's
MessagesBackend) and answer "Tool said: ..." once given its result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from tests.anthropic.fake_messages_backend import MessagesBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer

CLUSTER = "resp"


@pytest.fixture(scope="package")
def native_backend() -> Iterator[MessagesBackend]:
    with MessagesBackend(native=False) as server:
        yield server


@pytest.fixture(scope="package")
def chat_backend() -> Iterator[MessagesBackend]:
    with MessagesBackend(native=False, responses=False) as server:
        yield server


def catalog(native_url: str, chat_url: str) -> CatalogFiles:
    files = CatalogFiles()
    files.cluster(CLUSTER, operations=["chat/completions", "responses"])
    files.cluster("chatonly", operations=["chat/completions"])
    files.endpoint(CLUSTER, "native-model", native_url)
    files.endpoint(CLUSTER, "chat-model", chat_url)
    files.endpoint(CLUSTER, "translate-model", native_url, responses_api="translate")
    files.endpoint(CLUSTER, "forced-native-model", chat_url, responses_api="native")
    files.endpoint(
        CLUSTER,
        "strict-model",
        chat_url,
        responses_api="translate",
        responses_hosted_tools="refuse",
    )
    files.endpoint("chatonly", "only-chat-model", chat_url)
    return files


@pytest.fixture(scope="package")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    native_backend: MessagesBackend,
    chat_backend: MessagesBackend,
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("responses-gateway")
    files = catalog(native_backend.url, chat_backend.url)
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures")) as server:
        yield server


ClientFactory = Callable[..., openai.OpenAI]


@pytest.fixture(scope="package")
def make_client(gateway: GatewayServer) -> ClientFactory:
    def make(cluster: str | None = CLUSTER) -> openai.OpenAI:
        prefix = f"/{cluster}/vllm" if cluster else ""
        return gateway.openai_client(f"/resource_server{prefix}/v1")

    return make


@pytest.fixture(scope="package")
def client(make_client: ClientFactory) -> openai.OpenAI:
    return make_client()
