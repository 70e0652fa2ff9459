"""Every way an OpenAI-route request can fail, with the status and body the caller receives."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.inference.conftest import BODY_LIMIT, MAINTENANCE_NOTICE, ClientFactory
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hi"}]


def post(gateway: GatewayServer, path: str, content: bytes, key: str | None = None) -> Any:
    return httpx2.post(
        f"{gateway.url}/resource_server/{path}",
        content=content,
        headers={
            "Authorization": f"Bearer {key or gateway.api_key}",
            "Content-Type": "application/json",
        },
    )


def openai_error(
    message: str, kind: str, code: str, param: str | None = None, **info: Any
) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "type": kind, "param": param, "code": code}
    if info:
        error["info"] = info
    return {"error": error}


def failure(call: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


# --- the request itself ---------------------------------------------------------------------


def test_malformed_json_is_400(gateway: GatewayServer) -> None:
    answer = post(gateway, "alpha/vllm/v1/chat/completions", b'{"model": "fake-model",')

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_json"
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("The request body is not valid JSON: ")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "The request body is empty; send a JSON object."),
        (b"[1, 2]", "The request body must be a JSON object, not list."),
    ],
)
def test_body_that_is_not_a_json_object_is_400(
    gateway: GatewayServer, raw: bytes, message: str
) -> None:
    answer = post(gateway, "alpha/vllm/v1/chat/completions", raw)

    assert answer.status_code == 400
    assert answer.json() == openai_error(message, "invalid_request_error", "invalid_json")


def test_body_over_the_limit_is_413(gateway: GatewayServer, backend: FakeBackend) -> None:
    before = len(backend.requests)
    big = b'{"model": "fake-model", "messages": [{"role": "user", "content": "'
    big += b"x" * BODY_LIMIT + b'"}]}'

    answer = post(gateway, "alpha/vllm/v1/chat/completions", big)

    assert answer.status_code == 413
    assert answer.json() == openai_error(
        f"The request body is larger than the limit of {BODY_LIMIT} bytes.",
        "invalid_request_error",
        "request_too_large",
    )
    assert len(backend.requests) == before


def test_chunked_body_over_the_limit_is_413(gateway: GatewayServer) -> None:
    def chunks() -> Any:
        yield b'{"model": "fake-model", "prompt": "'
        for _ in range(BODY_LIMIT // 4096 + 2):
            yield b"y" * 4096
        yield b'"}'

    answer = httpx2.post(
        f"{gateway.url}/resource_server/alpha/vllm/v1/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {gateway.api_key}"},
    )

    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("fields", "param", "code", "message"),
    [
        (
            {"temperature": "hot"},
            "temperature",
            "invalid_type",
            "Invalid type for 'temperature': expected a number, got a string.",
        ),
        (
            {"temperature": 2.5},
            "temperature",
            "invalid_value",
            "Invalid 'temperature': must be between 0 and 2, got 2.5.",
        ),
        (
            {"top_p": 1.5},
            "top_p",
            "invalid_value",
            "Invalid 'top_p': must be between 0 and 1, got 1.5.",
        ),
        ({"n": 0}, "n", "invalid_value", "Invalid 'n': must be at least 1, got 0."),
        (
            {"max_tokens": 0},
            "max_tokens",
            "invalid_value",
            "Invalid 'max_tokens': must be at least 1, got 0.",
        ),
        (
            {"stream": "yes"},
            "stream",
            "invalid_type",
            "Invalid type for 'stream': expected a boolean, got a string.",
        ),
        (
            {"stop": 5},
            "stop",
            "invalid_type",
            "Invalid type for 'stop': expected a string or an array, got an integer.",
        ),
        ({"messages": []}, "messages", "empty_array", "'messages' must not be empty."),
        (
            {"messages": ["hi"]},
            "messages[0]",
            "invalid_type",
            "Invalid 'messages[0]': expected an object with a 'role', got a string.",
        ),
        (
            {"messages": [{"content": "hi"}]},
            "messages[0].role",
            "missing_required_parameter",
            "Missing required parameter: 'messages[0].role'.",
        ),
    ],
)
def test_wrong_types_and_ranges_are_400_naming_the_field(
    client: OpenAI, fields: dict[str, Any], param: str, code: str, message: str
) -> None:
    body = {"model": "fake-model", "messages": HELLO, **fields}

    error = failure(lambda: client.chat.completions.create(**body))

    assert error.status_code == 400
    assert error.response.json() == openai_error(message, "invalid_request_error", code, param)


def test_missing_model_is_400(gateway: GatewayServer) -> None:
    answer = post(gateway, "alpha/vllm/v1/chat/completions", b'{"messages": []}')

    assert answer.status_code == 400
    assert answer.json() == openai_error(
        "Missing required parameter: 'model'.",
        "invalid_request_error",
        "missing_required_parameter",
        "model",
    )


def test_missing_embedding_input_is_400(client: OpenAI) -> None:
    error = failure(lambda: client.embeddings.create(model="fake-model", input=None))  # type: ignore[arg-type]

    assert error.status_code == 400
    assert error.response.json() == openai_error(
        "Missing required parameter: 'input' or 'messages'.",
        "invalid_request_error",
        "missing_required_parameter",
        "input",
    )


# --- who and what ---------------------------------------------------------------------------


def test_bad_key_is_401(make_client: ClientFactory) -> None:
    error = failure(
        lambda: make_client(key="igw_not-a-real-key").chat.completions.create(
            model="fake-model", messages=HELLO
        )
    )

    assert error.status_code == 401
    body = error.response.json()["error"]
    assert (body["type"], body["code"]) == ("authentication_error", "invalid_api_key")


def test_unknown_model_is_404_listing_only_models_the_caller_may_use(client: OpenAI) -> None:
    error = failure(lambda: client.chat.completions.create(model="no-such-model", messages=HELLO))

    assert error.status_code == 404
    assert error.response.json() == openai_error(
        "Model 'no-such-model' is not served by 'vllm' on cluster 'alpha'. Models you may use "
        "there: 'Mixed-Case/Model-1.0', 'dead-model', 'failover-model', 'fake-model', "
        "'keyed-model', 'slow-model', 'unset-key-model', 'v1-suffix-model'.",
        "not_found_error",
        "model_not_found",
        "model",
    )


def test_unknown_model_lists_restricted_models_to_those_who_may_use_them(
    make_client: ClientFactory, partner_key: str
) -> None:
    partner = make_client(key=partner_key)

    error = failure(lambda: partner.chat.completions.create(model="nope", messages=HELLO))

    assert error.status_code == 404
    assert "'restricted-model'" in error.response.json()["error"]["message"]


def test_model_the_caller_may_not_use_is_403(client: OpenAI, backend: FakeBackend) -> None:
    before = len(backend.requests)
    error = failure(
        lambda: client.chat.completions.create(model="restricted-model", messages=HELLO)
    )

    assert error.status_code == 403
    assert error.response.json() == openai_error(
        "You are not allowed to use model 'restricted-model' on cluster 'alpha'. "
        "Ask the gateway operator to add your group or domain.",
        "permission_error",
        "permission_denied",
    )
    assert len(backend.requests) == before


def test_partner_may_use_the_restricted_model(make_client: ClientFactory, partner_key: str) -> None:
    answer = make_client(key=partner_key).chat.completions.create(
        model="restricted-model", messages=HELLO
    )

    assert answer.choices[0].message.content == "Echo: hi"


def test_unknown_cluster_is_404_listing_clusters(make_client: ClientFactory) -> None:
    error = failure(
        lambda: make_client("gamma").chat.completions.create(model="fake-model", messages=HELLO)
    )

    assert error.status_code == 404
    assert error.response.json() == openai_error(
        "There is no cluster 'gamma'. Clusters you may use: "
        "'alpha', 'beta', 'closed', 'metis', 'statusful', 'unannounced'.",
        "not_found_error",
        "cluster_not_found",
    )


def test_unknown_framework_is_404(make_client: ClientFactory) -> None:
    error = failure(
        lambda: make_client("alpha", "sglang").chat.completions.create(
            model="fake-model", messages=HELLO
        )
    )

    assert error.status_code == 404
    assert error.response.json() == openai_error(
        "Cluster 'alpha' has no framework 'sglang'. It has: 'vllm'.",
        "not_found_error",
        "framework_not_found",
    )


def test_cluster_under_maintenance_is_503_with_the_notice(
    make_client: ClientFactory, backend: FakeBackend
) -> None:
    before = len(backend.requests)
    error = failure(
        lambda: make_client("closed").chat.completions.create(model="closed-model", messages=HELLO)
    )

    assert error.status_code == 503
    assert error.response.headers["retry-after"] == "30"
    assert error.response.json() == openai_error(
        MAINTENANCE_NOTICE, "api_error", "cluster_maintenance", cluster="closed"
    )
    assert len(backend.requests) == before


# --- the model server -----------------------------------------------------------------------


def test_upstream_4xx_keeps_status_and_message(client: OpenAI) -> None:
    error = failure(
        lambda: client.chat.completions.create(
            model="fake-model", messages=HELLO, extra_body={"fake": {"status": 422}}
        )
    )

    assert error.status_code == 422
    assert error.response.json() == openai_error(
        "fake failure with status 422",
        "invalid_request_error",
        "upstream_error",
        cluster="alpha",
        model="fake-model",
        upstream_status=422,
    )


def test_upstream_4xx_to_a_stream_request_is_a_plain_error(client: OpenAI) -> None:
    error = failure(
        lambda: client.chat.completions.create(
            model="fake-model", messages=HELLO, stream=True, extra_body={"fake": {"status": 400}}
        )
    )

    assert error.status_code == 400
    assert error.response.headers["content-type"] == "application/json"
    assert error.response.json()["error"]["message"] == "fake failure with status 400"


def test_upstream_5xx_is_502_naming_cluster_and_model(client: OpenAI) -> None:
    error = failure(
        lambda: client.chat.completions.create(
            model="fake-model", messages=HELLO, extra_body={"fake": {"status": 500}}
        )
    )

    assert error.status_code == 502
    assert error.response.json() == openai_error(
        "The model server for model 'fake-model' on cluster 'alpha' failed (HTTP 500): "
        "fake failure with status 500",
        "api_error",
        "upstream_error",
        cluster="alpha",
        model="fake-model",
        upstream_status=500,
    )


def test_upstream_refusing_the_gateways_credential_is_502_not_401(client: OpenAI) -> None:
    error = failure(
        lambda: client.chat.completions.create(
            model="fake-model", messages=HELLO, extra_body={"fake": {"status": 401}}
        )
    )

    assert error.status_code == 502
    assert error.response.json() == openai_error(
        "The model server for model 'fake-model' on cluster 'alpha' refused the gateway's "
        "credentials (HTTP 401). Ask the gateway operator to check the endpoint's API key.",
        "api_error",
        "upstream_auth_failed",
        cluster="alpha",
        model="fake-model",
        upstream_status=401,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_unreachable_model_server_is_503(client: OpenAI, stream: bool) -> None:
    error = failure(
        lambda: client.chat.completions.create(model="dead-model", messages=HELLO, stream=stream)
    )

    assert error.status_code == 503
    assert error.response.headers["retry-after"] == "30"
    assert error.response.json() == openai_error(
        "The model server for model 'dead-model' on cluster 'alpha' cannot be reached. "
        "Try again later.",
        "api_error",
        "upstream_unreachable",
        cluster="alpha",
        model="dead-model",
    )


@pytest.mark.parametrize("stream", [False, True])
def test_model_server_timeout_is_504(client: OpenAI, stream: bool) -> None:
    error = failure(
        lambda: client.chat.completions.create(
            model="slow-model", messages=HELLO, stream=stream, extra_body={"fake": {"delay": 2}}
        )
    )

    assert error.status_code == 504
    assert error.response.json() == openai_error(
        "The model server for model 'slow-model' on cluster 'alpha' did not answer within 0.5 s.",
        "api_error",
        "upstream_timeout",
        cluster="alpha",
        model="slow-model",
    )


def test_answer_that_is_not_json_is_502(client: OpenAI) -> None:
    error = failure(
        lambda: client.chat.completions.create(
            model="fake-model", messages=HELLO, extra_body={"fake": {"malformed": True}}
        )
    )

    assert error.status_code == 502
    assert error.response.json() == openai_error(
        "The model server for model 'fake-model' on cluster 'alpha' failed: "
        "its answer is not a JSON object",
        "api_error",
        "upstream_error",
        cluster="alpha",
        model="fake-model",
    )


def test_unknown_route_is_json_404(gateway: GatewayServer) -> None:
    answer = post(gateway, "alpha/vllm/v1/chat/complete", b"{}")

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "route_not_found"
