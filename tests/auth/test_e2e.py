"""End to end: the gateway as a real server, globus-sdk talking HTTP to a Globus stand-in.

One gateway for the module. Its catalog has an open cluster and a cluster restricted to the
Globus group SOPHIA_GROUP whose endpoint is itself open: a caller outside the group must not
reach that endpoint by any route family, with a Globus token or an API key alike.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
import requests

from tests.auth import globus_data as gd
from tests.auth.conftest import SERVICE_CLIENT_ID, SERVICE_USERNAME
from tests.auth.globus_standin import GlobusStandIn
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import ALL_OPERATIONS, CatalogFiles
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

SOPHIA_GROUP = "5b0f3c2e-96b6-11ef-a3b4-0affd3f4a1c5"
OPEN_MODEL = "open-model"
RESTRICTED_MODEL = "restricted-model"  # served only on the restricted cluster
OPERATIONS = [*ALL_OPERATIONS, "messages"]


@pytest.fixture(scope="module")
def standin() -> Iterator[GlobusStandIn]:
    with GlobusStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=(OPEN_MODEL, RESTRICTED_MODEL)) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, standin: GlobusStandIn, backend: FakeBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("auth-gateway")
    files = CatalogFiles()
    files.cluster("open", operations=OPERATIONS)
    files.cluster("restricted", operations=OPERATIONS)
    files.clusters[-1]["fields"]["allowed_globus_groups"] = [SOPHIA_GROUP]
    files.endpoint("open", OPEN_MODEL, backend.url, messages_api="translate")
    # The endpoint row is open: only the cluster's restriction keeps outsiders away.
    files.endpoint("restricted", RESTRICTED_MODEL, backend.url, messages_api="translate")
    env = {
        "GLOBUS_APPLICATION_ID": gd.GATEWAY_CLIENT_ID,
        "GLOBUS_APPLICATION_SECRET": gd.GATEWAY_CLIENT_SECRET,
        "GLOBUS_SDK_SERVICE_URL_AUTH": standin.url,
        "GLOBUS_SDK_SERVICE_URL_GROUPS": standin.url,
        "AUTHORIZED_IDP_DOMAINS": "anl.gov",
        "GLOBUS_GROUPS": gd.GATEWAY_GROUP,
        "AUTHORIZED_GLOBUS_SERVICE_USERNAMES": json.dumps([SERVICE_USERNAME]),
        "GLOBUS_INTROSPECT_TIMEOUT": "5",
        # Every API key check reads the database, so revocation shows at once.
        "API_KEY_CACHE_SECONDS": "0",
    }
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


def globus_token(
    standin: GlobusStandIn,
    groups: list[str],
    body: dict[str, Any] | None = None,
    identity: gd.Identity | None = None,
) -> str:
    token = "Ag" + uuid.uuid4().hex + uuid.uuid4().hex
    user = identity or gd.argonne_user()
    standin.add_token(token, body or gd.introspection(user), groups, user)
    return token


@pytest.fixture(scope="module")
def outsider_token(standin: GlobusStandIn) -> str:
    """An Argonne user admitted to the gateway, not in the restricted cluster's group."""
    return globus_token(standin, [gd.GATEWAY_GROUP])


@pytest.fixture(scope="module")
def insider_token(standin: GlobusStandIn) -> str:
    return globus_token(standin, [gd.GATEWAY_GROUP, SOPHIA_GROUP])


@pytest.fixture(scope="module")
def outsider_key(gateway: GatewayServer) -> str:
    return gateway.create_api_key("outsider", "--groups", gd.OTHER_GROUP)


@pytest.fixture(scope="module")
def insider_key(gateway: GatewayServer) -> str:
    return gateway.create_api_key("insider", "--groups", SOPHIA_GROUP)


def get(gateway: GatewayServer, path: str, credential: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    return requests.get(f"{gateway.url}{path}", headers=headers, timeout=20)


def post(
    gateway: GatewayServer, path: str, body: dict[str, Any], headers: dict[str, str]
) -> requests.Response:
    return requests.post(f"{gateway.url}{path}", json=body, headers=headers, timeout=20)


# --- whoami and Globus across processes -----------------------------------------------------


def test_whoami_with_a_globus_token_and_the_cache_across_requests(
    gateway: GatewayServer, standin: GlobusStandIn
) -> None:
    user = gd.argonne_user()
    token = globus_token(standin, [gd.GATEWAY_GROUP, SOPHIA_GROUP], identity=user)
    before = standin.calls["introspect"]

    first = get(gateway, "/resource_server/whoami", token)
    second = get(gateway, "/resource_server/whoami", token)

    assert first.status_code == 200, first.text
    assert first.json() == {
        "id": user.id,
        "username": "jdoe@anl.gov",
        "name": "Jane Doe",
        "kind": "user",
        "idp_domain": "anl.gov",
        "groups": sorted([gd.GATEWAY_GROUP, SOPHIA_GROUP]),
        "identity_source": "Argonne National Laboratory",
    }
    assert second.json() == first.json()
    # Validated once; the second request was answered from the principal cache.
    assert standin.calls["introspect"] - before == 1
    assert token not in gateway.log_text()


def test_whoami_service_account(gateway: GatewayServer, standin: GlobusStandIn) -> None:
    token = globus_token(
        standin, [gd.GATEWAY_GROUP], gd.service_account_introspection(SERVICE_CLIENT_ID)
    )

    answer = get(gateway, "/resource_server/whoami", token)

    assert answer.status_code == 200, answer.text
    assert answer.json()["kind"] == "service"
    assert answer.json()["username"] == SERVICE_USERNAME


def test_inactive_globus_token_is_401(gateway: GatewayServer) -> None:
    answer = get(gateway, "/resource_server/whoami", "Ag" + uuid.uuid4().hex)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert answer.json()["error"]["code"] == "invalid_token"
    assert answer.json()["error"]["type"] == "authentication_error"


def test_idp_outside_the_allow_list_is_401_with_authorization_parameters(
    gateway: GatewayServer, standin: GlobusStandIn
) -> None:
    gmail = gd.gmail_identity()
    token = globus_token(standin, [gd.GATEWAY_GROUP], gd.introspection(gmail), gmail)

    answer = get(gateway, "/resource_server/whoami", token)

    assert answer.status_code == 401
    body = answer.json()
    assert body["error"]["code"] == "session_idp_not_allowed"
    assert body["code"] == "AuthorizationRequired"
    assert body["authorization_parameters"]["session_required_single_domain"] == ["anl.gov"]


def test_user_outside_globus_groups_is_403(gateway: GatewayServer, standin: GlobusStandIn) -> None:
    answer = get(gateway, "/resource_server/whoami", globus_token(standin, [gd.OTHER_GROUP]))

    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "not_in_required_group"


def test_globus_outage_is_503_and_not_remembered(
    gateway: GatewayServer, standin: GlobusStandIn
) -> None:
    token = globus_token(standin, [gd.GATEWAY_GROUP])
    standin.down = True
    try:
        answer = get(gateway, "/resource_server/whoami", token)
    finally:
        standin.down = False

    assert answer.status_code == 503
    assert answer.headers["Retry-After"]
    assert answer.json()["error"]["code"] == "globus_unavailable"
    assert "not a problem with your token" in answer.json()["error"]["message"]
    assert get(gateway, "/resource_server/whoami", token).status_code == 200


# --- API keys ---------------------------------------------------------------------------------


def test_api_key_lifecycle(gateway: GatewayServer) -> None:
    key = gateway.create_api_key("lifecycle", "--groups", SOPHIA_GROUP, "--domain", "anl.gov")

    who = get(gateway, "/resource_server/whoami", key)
    assert who.status_code == 200, who.text
    assert who.json()["kind"] == "api_key"
    assert who.json()["groups"] == [SOPHIA_GROUP]
    assert who.json()["idp_domain"] == "anl.gov"

    listed = json.loads(gateway.manage("list_api_keys", "--json").stdout)
    assert any(k["name"] == "lifecycle" and k["status"] == "active" for k in listed)
    revoked = gateway.manage("revoke_api_key", key[:12]).stdout
    assert "Revoked key" in revoked

    answer = get(gateway, "/resource_server/whoami", key)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"
    assert key not in gateway.log_text()


def test_wrong_key_and_missing_credential_are_401(gateway: GatewayServer) -> None:
    wrong = get(gateway, "/resource_server/whoami", "igw_" + "x" * 43)
    missing = get(gateway, "/resource_server/whoami")
    x_api_key_on_whoami = requests.get(
        f"{gateway.url}/resource_server/whoami", headers={"x-api-key": gateway.api_key}, timeout=20
    )

    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_api_key")
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_credentials")
    # x-api-key is the Anthropic client's header, accepted on every route.
    assert x_api_key_on_whoami.status_code == 200
    assert x_api_key_on_whoami.json()["username"] == "e2e"


def test_a_mistyped_key_is_refused_by_its_checksum_with_the_openai_client(
    gateway: GatewayServer,
) -> None:
    key = gateway.api_key
    typo = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
    client = openai.OpenAI(
        base_url=f"{gateway.url}/resource_server/open/vllm/v1",
        api_key=typo,
        max_retries=0,
        timeout=20,
    )

    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(
            model=OPEN_MODEL, max_tokens=16, messages=[{"role": "user", "content": "hello"}]
        )

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert "checksum does not match" in caught.value.message
    listed = json.loads(gateway.manage("list_api_keys", "--json").stdout)
    assert {k["format"] for k in listed} == {"checksummed"}


def test_anthropic_client_sends_the_key_as_x_api_key(
    gateway: GatewayServer, insider_key: str
) -> None:
    client = anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server/open/vllm",
        api_key=insider_key,
        max_retries=0,
        timeout=20,
    )
    message = client.messages.create(
        model=OPEN_MODEL, max_tokens=16, messages=[{"role": "user", "content": "hello"}]
    )
    assert message.type == "message"

    wrong = anthropic.Anthropic(
        base_url=f"{gateway.url}/resource_server/open/vllm",
        api_key="igw_" + "y" * 43,
        max_retries=0,
        timeout=20,
    )
    with pytest.raises(anthropic.AuthenticationError) as caught:
        wrong.messages.create(
            model=OPEN_MODEL, max_tokens=16, messages=[{"role": "user", "content": "hello"}]
        )
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "The API key is unknown, expired or revoked. "
            "Ask your gateway operator for a new key.",
        },
    }


# --- authorization, for each route family ---------------------------------------------------

CHAT = {"model": RESTRICTED_MODEL, "messages": [{"role": "user", "content": "hi"}]}
DENIED_MESSAGE = (
    f"You are not allowed to use model {RESTRICTED_MODEL!r} on cluster 'restricted'. "
    "Ask the gateway operator to add your group or domain."
)


@pytest.fixture(params=["globus", "api_key"])
def outsider(request: pytest.FixtureRequest) -> str:
    return str(
        request.getfixturevalue("outsider_token" if request.param == "globus" else "outsider_key")
    )


@pytest.fixture(params=["globus", "api_key"])
def insider(request: pytest.FixtureRequest) -> str:
    return str(
        request.getfixturevalue("insider_token" if request.param == "globus" else "insider_key")
    )


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("chat/completions", CHAT),
        ("completions", {"model": RESTRICTED_MODEL, "prompt": "hi"}),
        ("embeddings", {"model": RESTRICTED_MODEL, "input": "hi"}),
        ("responses", {"model": RESTRICTED_MODEL, "input": "hi"}),
    ],
)
def test_inference_cluster_scoped_is_403_outside_the_clusters_group(
    gateway: GatewayServer, outsider: str, operation: str, body: dict[str, Any]
) -> None:
    answer = post(
        gateway,
        f"/resource_server/restricted/vllm/v1/{operation}",
        body,
        {"Authorization": f"Bearer {outsider}"},
    )

    assert answer.status_code == 403
    assert answer.json() == {
        "error": {
            "message": DENIED_MESSAGE,
            "type": "permission_error",
            "param": None,
            "code": "permission_denied",
        }
    }


def test_inference_cluster_scoped_with_the_openai_client(
    gateway: GatewayServer, outsider: str, insider: str
) -> None:
    def client(key: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{gateway.url}/resource_server/restricted/vllm/v1",
            api_key=key,
            max_retries=0,
            timeout=20,
        )

    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(outsider).chat.completions.create(**CHAT)
    assert caught.value.status_code == 403
    assert caught.value.code == "permission_denied"

    answer = client(insider).chat.completions.create(**CHAT)
    assert answer.choices[0].message.content


def test_inference_federated_does_not_route_outsiders_to_the_cluster(
    gateway: GatewayServer, outsider: str, insider: str
) -> None:
    denied = post(
        gateway,
        "/resource_server/v1/chat/completions",
        CHAT,
        {"Authorization": f"Bearer {outsider}"},
    )
    allowed = post(
        gateway,
        "/resource_server/v1/chat/completions",
        CHAT,
        {"Authorization": f"Bearer {insider}"},
    )

    assert denied.status_code == 404
    assert denied.json()["error"]["code"] == "model_not_found"
    assert denied.json()["error"]["message"].startswith(
        f"No cluster serves model {RESTRICTED_MODEL!r} to you."
    )
    assert RESTRICTED_MODEL not in denied.json()["error"]["message"].split("to you.")[1]
    assert allowed.status_code == 200, allowed.text


def test_anthropic_messages_is_403_outside_the_clusters_group(
    gateway: GatewayServer, outsider: str, insider: str
) -> None:
    body = {"model": RESTRICTED_MODEL, "max_tokens": 16, "messages": CHAT["messages"]}
    path = "/resource_server/restricted/vllm/v1/messages"

    denied = post(gateway, path, body, {"x-api-key": outsider})
    allowed = post(gateway, path, body, {"x-api-key": insider})

    assert denied.status_code == 403
    assert denied.json() == {
        "type": "error",
        "error": {"type": "permission_error", "message": DENIED_MESSAGE},
    }
    assert allowed.status_code == 200, allowed.text
    federated = post(gateway, "/resource_server/v1/messages", body, {"x-api-key": outsider})
    assert federated.status_code == 404
    assert federated.json()["error"]["type"] == "not_found_error"


def test_list_endpoints_hides_the_cluster_from_outsiders(
    gateway: GatewayServer, outsider: str, insider: str
) -> None:
    denied = get(gateway, "/resource_server/list-endpoints", outsider)
    allowed = get(gateway, "/resource_server/list-endpoints", insider)

    assert denied.status_code == 200
    assert set(denied.json()["clusters"]) == {"open"}
    assert set(allowed.json()["clusters"]) == {"open", "restricted"}
    assert allowed.json()["clusters"]["restricted"]["frameworks"]["vllm"]["models"] == [
        RESTRICTED_MODEL
    ]


def test_model_lists_hide_the_clusters_models_from_outsiders(
    gateway: GatewayServer, outsider: str, insider: str
) -> None:
    def ids(answer: requests.Response) -> list[str]:
        assert answer.status_code == 200, answer.text
        return [m["id"] for m in answer.json()["data"]]

    assert ids(get(gateway, "/resource_server/v1/models", outsider)) == [OPEN_MODEL]
    assert ids(get(gateway, "/resource_server/v1/models", insider)) == [
        OPEN_MODEL,
        RESTRICTED_MODEL,
    ]
    assert ids(get(gateway, "/resource_server/restricted/vllm/v1/models", outsider)) == []
    assert ids(get(gateway, "/resource_server/restricted/vllm/v1/models", insider)) == [
        RESTRICTED_MODEL
    ]


def test_jobs_are_403_outside_the_clusters_group(
    gateway: GatewayServer, outsider: str, insider: str
) -> None:
    denied = get(gateway, "/resource_server/restricted/jobs", outsider)
    allowed = get(gateway, "/resource_server/restricted/jobs", insider)

    assert denied.status_code == 403
    assert denied.json() == {
        "error": {
            "message": "You are not allowed to use cluster 'restricted'. "
            "Ask the gateway operator to add your group or domain.",
            "type": "permission_error",
            "param": None,
            "code": "permission_denied",
        }
    }
    # Past authorization: the cluster is a DirectAPI cluster without a status page, which
    # reports no jobs (501), the answer of every caller allowed to use it.
    assert allowed.status_code == 501, allowed.text
    assert allowed.json()["error"]["code"] == "jobs_not_supported"
    assert allowed.json()["error"]["info"] == {"cluster": "restricted"}
