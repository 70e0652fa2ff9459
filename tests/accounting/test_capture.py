"""What the capture takes from the request and its answer: the client's address (a forwarded
address believed only from a trusted proxy), prompts and answers (RECORD_PROMPTS, cut at its
bound; nothing when off), and the gateway's own 500 (x-request-id too). Real gateways."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx2 as httpx
import openai
import orjson
import pytest

from tests.accounting.conftest import UVICORN_PROXY, record_in
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

CHAT = "/resource_server/alpha/vllm/v1/chat/completions"
PROMPT_MAX_CHARS = 120
RecordOf = Callable[[str], dict]


def _rid() -> str:
    return "capture-" + uuid.uuid4().hex[:16]


@pytest.fixture(scope="module")
def recording(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[GatewayServer]:
    """A gateway that stores prompts and answers, behind a proxy network that is not ours."""
    tmp = tmp_path_factory.mktemp("recording-gateway")
    files = CatalogFiles()
    files.cluster("alpha", operations=["chat/completions"])
    files.endpoint("alpha", "fake-model", backend.url)
    env = {
        "RECORD_PROMPTS": "true",
        "RECORD_PROMPT_MAX_CHARS": str(PROMPT_MAX_CHARS),
        "TRUSTED_PROXY_NETWORKS": "10.0.0.0/8",
        "FORWARDED_ALLOW_IPS": UVICORN_PROXY,
    }
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


def _chat(gateway: GatewayServer, body: dict, rid: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{CHAT}",
        content=orjson.dumps(body),
        headers={
            "Authorization": f"Bearer {gateway.api_key}",
            "Content-Type": "application/json",
            "x-request-id": rid,
            **headers,
        },
        timeout=20,
    )


def _hello(content: str = "hello") -> dict:
    return {"model": "fake-model", "messages": [{"role": "user", "content": content}]}


# --- the client's address --------------------------------------------------------------------


def test_the_address_a_chain_of_trusted_proxies_forwarded(
    gateway: GatewayServer, record_of: RecordOf
) -> None:
    rid = _rid()
    # client 198.51.100.9 -> proxy 203.0.113.5 (not ours) -> our 10.1.2.3 -> our 127.0.0.1
    forwarded = "198.51.100.9, 203.0.113.5, 10.1.2.3"
    assert _chat(gateway, _hello(), rid, **{"x-forwarded-for": forwarded}).status_code == 200
    # The right-most address that none of our proxies is: 203.0.113.5 could have made up the
    # rest, so 198.51.100.9 is not believed.
    assert record_of(rid)["client_address"] == "203.0.113.5"


def test_only_trusted_proxies_forward_when_all_hops_are_ours(
    gateway: GatewayServer, record_of: RecordOf
) -> None:
    rid = _rid()
    assert _chat(gateway, _hello(), rid, **{"x-forwarded-for": "10.0.0.7"}).status_code == 200
    assert record_of(rid)["client_address"] == "127.0.0.1"  # nobody outside: the peer


def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(recording: GatewayServer) -> None:
    rid = _rid()
    assert _chat(recording, _hello(), rid, **{"x-forwarded-for": "203.0.113.7"}).status_code == 200
    # The peer (127.0.0.1) is not in TRUSTED_PROXY_NETWORKS here: it could choose the address.
    assert record_in(recording.env["DATABASE_URL"], rid)["client_address"] == "127.0.0.1"


# --- prompts and answers -----------------------------------------------------------------------


def test_prompts_and_answers_are_stored_when_on(recording: GatewayServer) -> None:
    rid = _rid()
    body = _hello("short")
    answer = _chat(recording, body, rid)
    record = record_in(recording.env["DATABASE_URL"], rid)
    assert len(orjson.dumps(body)) < PROMPT_MAX_CHARS < len(answer.text)
    assert record["prompt"] == orjson.dumps(body).decode()  # under the bound: whole
    assert record["answer"] == answer.text[:PROMPT_MAX_CHARS]  # the JSON answer's start


def test_a_long_prompt_is_cut_at_the_bound(recording: GatewayServer) -> None:
    rid = _rid()
    body = _hello(" ".join(f"word{index}" for index in range(200)))
    assert _chat(recording, body, rid).status_code == 200
    record = record_in(recording.env["DATABASE_URL"], rid)
    assert record["prompt"] == orjson.dumps(body).decode()[:PROMPT_MAX_CHARS]


def test_a_streamed_answer_is_stored_as_its_events(recording: GatewayServer) -> None:
    rid = _rid()
    client = openai.OpenAI(
        base_url=f"{recording.url}/resource_server/alpha/vllm/v1",
        api_key=recording.api_key,
        max_retries=0,
    )
    stream = client.chat.completions.create(
        **_hello("a streamed one"), stream=True, extra_headers={"x-request-id": rid}
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Echo: a streamed one"
    record = record_in(recording.env["DATABASE_URL"], rid)
    assert record["answer"].startswith("data: {") and len(record["answer"]) == PROMPT_MAX_CHARS
    assert "a streamed one" in record["prompt"]


def test_nothing_is_stored_when_off(gateway: GatewayServer, record_of: RecordOf) -> None:
    rid = _rid()
    assert _chat(gateway, _hello("keep this to yourself"), rid).status_code == 200
    record = record_of(rid)
    assert record["status"] == 200 and record["prompt"] == "" and record["answer"] == ""


# --- the gateway's own failure -------------------------------------------------------------------


def test_a_500_of_the_outermost_error_handling_has_the_request_id(
    gateway: GatewayServer, record_of: RecordOf
) -> None:
    rid = _rid()
    client = gateway.openai_client()
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="broken-model",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-request-id": rid},
        )
    response = caught.value.response
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert response.headers["x-request-id"] == rid
    assert response.headers["server-timing"].startswith("gateway;dur=")
    record = record_of(rid)
    assert record["status"] == 500 and record["error_code"] == "internal_error"
    assert record["endpoint_slug"] == "alpha-vllm-broken-model"
