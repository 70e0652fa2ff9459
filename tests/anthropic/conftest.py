"""Two fake model servers (one speaks Messages, one only chat) and one real gateway in front.

anthro (vllm; chat/completions, messages)
    native-model         native server, messages_api auto      -> passed through
    chat-model           chat-only server, auto                 -> 404 once, then translated
    translate-model      native server, messages_api translate -> translated all the same
    forced-native-model  chat-only server, messages_api native -> the server's 404
    dead-model           nothing listens there                  -> 503
    restricted-model     native server, example.org only        -> 403 for others
    text-count-model     chat-only server, translate; tokenizer llama-cpp-python (text)
    cpp-count-model      chat-only server, translate; tokenizer llama.cpp (text)
    lost-count-model     chat-only server, translate; tokenizer at a path it lacks -> 404
chatonly (vllm; chat/completions)   chat-model                  -> /v1/messages not offered
resting (vllm; chat/completions, messages; under maintenance)   resting-model -> 503
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import anthropic
import pytest

from tests.anthropic.fake_messages_backend import MessagesBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer, free_port

RESTING_NOTICE = "Cluster 'resting' is resting until Monday."


@pytest.fixture(scope="package")
def native_backend() -> Iterator[MessagesBackend]:
    with MessagesBackend(native=True) as server:
        yield server


@pytest.fixture(scope="package")
def chat_backend() -> Iterator[MessagesBackend]:
    with MessagesBackend(native=False) as server:
        yield server


@pytest.fixture(scope="package")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    native_backend: MessagesBackend,
    chat_backend: MessagesBackend,
) -> Iterator[GatewayServer]:
    files = CatalogFiles()
    files.cluster("anthro", operations=["chat/completions", "messages"])
    files.cluster("chatonly", operations=["chat/completions"])
    files.endpoint("anthro", "native-model", native_backend.url)
    files.endpoint("anthro", "chat-model", chat_backend.url)
    files.endpoint("anthro", "translate-model", native_backend.url, messages_api="translate")
    files.endpoint("anthro", "forced-native-model", chat_backend.url, messages_api="native")
    files.endpoint("anthro", "dead-model", f"http://127.0.0.1:{free_port()}")
    files.endpoint(
        "anthro", "restricted-model", native_backend.url, allowed_domains=["example.org"]
    )
    tokenizers = {
        "text-count-model": {"kind": "llama-cpp-python"},
        "cpp-count-model": {"kind": "llama.cpp"},
        "lost-count-model": {"kind": "vllm", "path": "/no/tokenizer"},
    }
    for model, tokenizer in tokenizers.items():
        files.endpoint(
            "anthro", model, chat_backend.url, messages_api="translate", tokenizer=tokenizer
        )
    files.endpoint("chatonly", "chat-model", chat_backend.url)
    files.cluster("resting", operations=["chat/completions", "messages"])
    files.endpoint("resting", "resting-model", native_backend.url)
    tmp = tmp_path_factory.mktemp("anthropic-gateway")
    env = {"MAINTENANCE_ERROR_NOTICES": json.dumps({"resting": RESTING_NOTICE})}
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


ClientFactory = Callable[..., anthropic.Anthropic]


@pytest.fixture(scope="package")
def make_client(gateway: GatewayServer) -> ClientFactory:
    def make(cluster: str | None = "anthro", framework: str = "vllm", **options: object):
        prefix = f"/{cluster}/{framework}" if cluster else ""
        options.setdefault("api_key", gateway.api_key)
        return anthropic.Anthropic(
            base_url=f"{gateway.url}/resource_server{prefix}",
            max_retries=0,
            timeout=20.0,
            **options,  # type: ignore[arg-type]
        )

    return make


@pytest.fixture(scope="package")
def client(make_client: ClientFactory) -> anthropic.Anthropic:
    return make_client()
