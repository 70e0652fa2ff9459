"""The OpenAPI document and the browsable docs page, served by the real gateway."""

from __future__ import annotations

import re

import httpx2
import pytest

from resource_server_async.schemas.openai import REQUESTS
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e


def test_openapi_document_is_generated_from_the_request_schemas(gateway: GatewayServer) -> None:
    answer = httpx2.get(f"{gateway.url}/resource_server/openapi.json")

    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"] == "3.1.0"
    for operation in REQUESTS:
        assert f"/resource_server/{{cluster}}/{{framework}}/v1/{operation}" in document["paths"]
        assert f"/resource_server/v1/{operation}" in document["paths"]
    chat = document["components"]["schemas"]["ChatCompletionRequest"]
    assert chat["required"] == ["model", "messages"]
    assert chat["additionalProperties"] is True
    assert chat["properties"]["temperature"] == {
        "type": ["number", "null"],
        "description": "Sampling temperature.",
        "minimum": 0,
        "maximum": 2,
    }
    assert chat["properties"]["messages"]["items"]["required"] == ["role"]
    assert "top_k" in chat["description"]  # forwarded fields are documented as such
    post = document["paths"]["/resource_server/{cluster}/{framework}/v1/chat/completions"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletionRequest"
    }
    assert {"400", "401", "403", "404", "413", "502", "503", "504"} <= set(post["responses"])


def test_docs_page_renders_the_routes_without_external_assets(gateway: GatewayServer) -> None:
    answer = httpx2.get(f"{gateway.url}/resource_server/docs")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert "/resource_server/{cluster}/{framework}/v1/chat/completions" in page
    assert "/resource_server/v1/models" in page
    assert "<code>temperature</code>" in page
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?https?://""", page)


def test_batch_routes_and_inference_headers_are_documented(gateway: GatewayServer) -> None:
    from resource_server_async.api.views import batches, cluster_batches

    document = httpx2.get(f"{gateway.url}/resource_server/openapi.json").json()
    paths = document["paths"]
    for route in [*batches.routes, *cluster_batches.routes]:
        for method in route.methods or ():
            if method != "HEAD":
                assert method.lower() in paths[route.path], (method, route.path)
    federated = paths["/resource_server/v1/chat/completions"]["post"]
    assert {"x-project", "x-priority", "x-session-id"} <= {
        p["name"] for p in federated["parameters"]
    }
    answer_headers = federated["responses"]["200"]["headers"]
    assert {"x-request-id", "x-served-by", "x-ratelimit-remaining-tokens"} <= set(answer_headers)
    scoped = paths["/resource_server/{cluster}/{framework}/v1/chat/completions"]["post"]
    assert {"cluster", "framework", "x-project"} <= {p["name"] for p in scoped["parameters"]}
