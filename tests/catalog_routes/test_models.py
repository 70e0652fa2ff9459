"""/v1/models says where each model is served, in what state, under which names and what it
can do; the official clients list and retrieve models; aliases and legacy slugs reach the
endpoint, which receives its own model name."""

from __future__ import annotations

import anthropic
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.catalog_routes.conftest import CAPABILITIES
from tests.fake_backend import FakeBackend
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


def get(gateway: GatewayServer, path: str, **headers: str) -> httpx2.Response:
    return httpx2.get(
        f"{gateway.url}{path}", headers={"Authorization": f"Bearer {gateway.api_key}", **headers}
    )


def test_the_federated_list_shows_clusters_states_aliases_and_capabilities(
    gateway: GatewayServer,
) -> None:
    answer = get(gateway, "/resource_server/v1/models")

    assert answer.status_code == 200
    models = {m["id"]: m for m in answer.json()["data"]}
    assert sorted(models) == ["alpha-only", "renamed-model", "shared-model"]
    shared = models["shared-model"]
    assert shared["object"] == "model"
    assert shared["clusters"] == ["alpha", "beta", "gamma"]
    # Live states: the fake server lists shared-model (ready); nothing listens for gamma.
    assert shared["served_by"] == [
        {
            "cluster": "alpha",
            "framework": "vllm",
            "state": "ready",
            "base_url": "/resource_server/alpha/vllm/v1",
        },
        {
            "cluster": "beta",
            "framework": "vllm",
            "state": "ready",
            "base_url": "/resource_server/beta/vllm/v1",
        },
        {
            "cluster": "gamma",
            "framework": "vllm",
            "state": "offline",
            "base_url": "/resource_server/gamma/vllm/v1",
        },
    ]
    assert shared["aliases"] == ["beta-name", "shared-alias"]
    assert shared["capabilities"] == {"schema_version": 1, **CAPABILITIES}
    # A model without config.capabilities says only which field names it would use.
    assert models["alpha-only"]["capabilities"] == {"schema_version": 1}
    # Its server answers but does not list it.
    assert models["alpha-only"]["served_by"][0]["state"] == "reachable"


def test_the_openai_client_lists_and_retrieves_models(gateway: GatewayServer) -> None:
    client = gateway.openai_client("/resource_server/v1")

    assert [m.id for m in client.models.list()] == ["alpha-only", "renamed-model", "shared-model"]
    model = client.models.retrieve("shared-model")
    assert model.id == "shared-model"
    assert model.model_extra is not None
    assert model.model_extra["capabilities"]["context_window_tokens"] == 131072
    by_alias = client.models.retrieve("SHARED-ALIAS")
    assert by_alias.id == "shared-model", "an alias names its model, case-insensitively"


def test_an_unknown_model_is_404_in_each_dialect(gateway: GatewayServer) -> None:
    client = gateway.openai_client("/resource_server/v1")
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found"
    assert "'no-such-model'" in caught.value.message

    claude = anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server", api_key=gateway.api_key, max_retries=0
    )
    with pytest.raises(anthropic.NotFoundError) as refused:
        claude.models.retrieve("no-such-model")
    assert refused.value.body["type"] == "error"  # type: ignore[index]


def test_the_anthropic_client_lists_and_retrieves_models(gateway: GatewayServer) -> None:
    claude = anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server/alpha/vllm",
        api_key=gateway.api_key,
        max_retries=0,
    )

    assert [m.id for m in claude.models.list()] == ["alpha-only", "renamed-model", "shared-model"]
    assert claude.models.retrieve("shared-alias").id == "shared-model"


def test_a_cluster_scoped_list_shows_that_cluster_only(gateway: GatewayServer) -> None:
    answer = get(gateway, "/resource_server/beta/vllm/v1/models")

    assert answer.status_code == 200
    (shared,) = answer.json()["data"]
    assert shared["id"] == "shared-model"
    assert [s["cluster"] for s in shared["served_by"]] == ["beta"]
    assert shared["aliases"] == ["beta-name"]
    assert shared["capabilities"] == {"schema_version": 1}, "beta's endpoint describes nothing"


def test_the_reference_cluster_models_route_is_a_bare_list(gateway: GatewayServer) -> None:
    answer = get(gateway, "/resource_server/alpha/models")

    assert answer.status_code == 200
    rows = answer.json()
    assert [r["id"] for r in rows] == ["alpha-only", "renamed-model", "shared-model"]
    shared = rows[-1]
    assert {k: shared[k] for k in ("object", "cluster", "framework", "endpoint_slug")} == {
        "object": "model",
        "cluster": "alpha",
        "framework": "vllm",
        "endpoint_slug": "alpha-vllm-shared-model",
    }
    assert shared["capabilities"]["tool_calling"] is True

    one = get(gateway, "/resource_server/alpha/models?model_id=shared-model")
    assert [r["id"] for r in one.json()] == ["shared-model"]
    missing = get(gateway, "/resource_server/alpha/models?model_id=nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
    unknown = get(gateway, "/resource_server/nowhere/models")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "cluster_not_found"


def test_an_alias_reaches_the_endpoint_which_receives_its_own_name(
    gateway: GatewayServer, backend: FakeBackend
) -> None:
    scoped = gateway.openai_client("/resource_server/alpha/vllm/v1")
    reply = scoped.chat.completions.create(model="shared-alias", messages=HELLO)
    assert reply.choices[0].message.content
    assert backend.last.json["model"] == "shared-model"

    federated = gateway.openai_client("/resource_server/v1")
    federated.chat.completions.create(model="beta-name", messages=HELLO)
    assert backend.last.json["model"] == "shared-model"


def test_an_alias_of_one_cluster_is_not_a_name_on_another(gateway: GatewayServer) -> None:
    client = gateway.openai_client("/resource_server/beta/vllm/v1")
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="shared-alias", messages=HELLO)
    assert caught.value.code == "model_not_found"


def test_a_legacy_slug_reaches_the_renamed_endpoint(
    gateway: GatewayServer, backend: FakeBackend
) -> None:
    client = gateway.openai_client("/resource_server/alpha/vllm/v1")

    client.chat.completions.create(model="old-model", messages=HELLO)

    assert backend.last.json["model"] == "renamed-model"
    with pytest.raises(openai.NotFoundError):
        gateway.openai_client("/resource_server/beta/vllm/v1").chat.completions.create(
            model="old-model",
            messages=HELLO,
        )


def test_the_openapi_document_describes_the_model_routes(gateway: GatewayServer) -> None:
    document = httpx2.get(f"{gateway.url}/resource_server/openapi.json").json()

    for path in (
        "/resource_server/v1/models/{model_id}",
        "/resource_server/{cluster}/{framework}/v1/models/{model_id}",
        "/resource_server/{cluster}/models",
    ):
        assert path in document["paths"]
    model = document["paths"]["/resource_server/v1/models/{model_id}"]["get"]
    schema = model["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]["capabilities"]["properties"]) == {
        "schema_version",
        *CAPABILITIES,
    }
