"""Federated routes (/resource_server/v1/...): the model picks the cluster; listings."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.inference.conftest import MAINTENANCE_NOTICE, ClientFactory
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def federated(make_client: ClientFactory) -> OpenAI:
    return make_client(cluster=None)


def failure(call: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


def test_federated_chat_goes_to_a_cluster_serving_the_model(
    federated: OpenAI, backend: FakeBackend
) -> None:
    answer = federated.chat.completions.create(model="BETA-ONLY-MODEL", messages=HELLO)

    assert answer.model == "beta-only-model"
    assert backend.last.json["model"] == "beta-only-model"


def test_federated_fails_over_past_an_unreachable_server(
    federated: OpenAI, backend: FakeBackend
) -> None:
    # failover-model: on alpha its server is dead, on beta it is alive.
    for _ in range(2):
        answer = federated.chat.completions.create(model="failover-model", messages=HELLO)
        assert answer.choices[0].message.content == "Echo: hi"
        assert backend.last.json["model"] == "failover-model"


def test_federated_streaming(federated: OpenAI) -> None:
    stream = federated.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "x"}], stream=True
    )

    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Echo: x"


def test_federated_other_operations(federated: OpenAI) -> None:
    assert federated.completions.create(model="fake-model", prompt="p").choices[0].text
    assert federated.embeddings.create(model="fake-model", input="e").data
    assert federated.responses.create(model="fake-model", input="r").output_text == "Echo: r"


def test_federated_unknown_model_is_404_listing_models_the_caller_may_use(
    federated: OpenAI,
) -> None:
    error = failure(lambda: federated.embeddings.create(model="nope", input="x"))

    assert error.status_code == 404
    assert error.response.json() == {
        "error": {
            "message": "No cluster serves model 'nope' to you. Models you may use with "
            "/v1/embeddings: 'Mixed-Case/Model-1.0', 'closed-model', 'dead-model', "
            "'failover-model', 'fake-model', 'keyed-model', 'live-model', 'slow-model', "
            "'statusful-model', 'stopped-model', 'unannounced-model', 'unlisted-model', "
            "'unset-key-model', 'v1-suffix-model'.",
            "type": "not_found_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def test_federated_operation_no_cluster_of_the_model_offers_is_404(federated: OpenAI) -> None:
    error = failure(lambda: federated.embeddings.create(model="beta-only-model", input="x"))

    assert error.status_code == 404
    assert error.response.json()["error"] == {
        "message": "Model 'beta-only-model' is served on 'beta', which does not offer "
        "/v1/embeddings.",
        "type": "not_found_error",
        "param": None,
        "code": "operation_not_offered",
    }


def test_federated_model_only_on_a_closed_cluster_is_503(federated: OpenAI) -> None:
    error = failure(lambda: federated.chat.completions.create(model="closed-model", messages=HELLO))

    assert error.status_code == 503
    assert error.response.json()["error"] == {
        "message": MAINTENANCE_NOTICE,
        "type": "api_error",
        "param": None,
        "code": "cluster_maintenance",
        "info": {"clusters": ["closed"]},
    }


def test_federated_model_the_caller_may_not_use_is_404(federated: OpenAI) -> None:
    error = failure(
        lambda: federated.chat.completions.create(model="restricted-model", messages=HELLO)
    )

    assert error.status_code == 404
    assert "restricted-model' to you" in error.response.json()["error"]["message"]


def test_model_list_has_only_models_the_caller_may_use(
    federated: OpenAI, make_client: ClientFactory, partner_key: str
) -> None:
    models = {model.id: model for model in federated.models.list()}

    assert "restricted-model" not in models
    assert models["fake-model"].owned_by == "alpha,beta"
    assert models["fake-model"].object == "model"
    assert models["live-model"].model_dump()["clusters"] == ["metis"]
    partner_models = [m.id for m in make_client(cluster=None, key=partner_key).models.list()]
    assert "restricted-model" in partner_models


def list_endpoints(gateway: GatewayServer, key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx2.get(f"{gateway.url}/resource_server/list-endpoints", headers=headers)


def test_list_endpoints_shape(gateway: GatewayServer) -> None:
    answer = list_endpoints(gateway, gateway.api_key)

    assert answer.status_code == 200
    clusters = answer.json()["clusters"]
    assert list(clusters) == ["alpha", "beta", "closed", "metis", "statusful", "unannounced"]
    assert clusters["beta"] == {
        "base_url": "/resource_server/beta",
        "frameworks": {
            "vllm": {
                "models": ["beta-only-model", "failover-model", "fake-model"],
                "endpoints": ["/v1/chat/completions"],
            }
        },
    }
    assert clusters["metis"]["frameworks"]["api"]["endpoints"] == [
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
    ]
    assert "restricted-model" not in clusters["alpha"]["frameworks"]["vllm"]["models"]


def test_list_endpoints_shows_restricted_models_to_those_who_may_use_them(
    gateway: GatewayServer, partner_key: str
) -> None:
    clusters = list_endpoints(gateway, partner_key).json()["clusters"]

    assert "restricted-model" in clusters["alpha"]["frameworks"]["vllm"]["models"]


def test_list_endpoints_needs_a_credential(gateway: GatewayServer) -> None:
    answer = list_endpoints(gateway, None)

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "missing_credentials"
