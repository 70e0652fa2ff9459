"""End to end with COMPUTE_EXECUTOR=local: the gateway as operators run it (uvicorn, fixtures,
API key), GlobusComputeEndpoint rows served by the project's functions on the gateway's own
worker pool, streams through the real side channel, /jobs through the PBS status function on
a fake PBS. Called with the official openai client.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import openai
import pytest
import requests

from resource_server_async.compute.functions import INFERENCE, PBS_STATUS
from resource_server_async.streaming import issue_token
from tests.accounting.records_db import fetch_records
from tests.compute.catalog import (
    DIRECT_CLUSTER,
    cluster_row,
    endpoint_row,
    local_executor_env,
    write_fixtures,
)
from tests.compute.conftest import STREAMING_SECRET
from tests.compute.scheduler import FakePBS
from tests.fake_backend import FakeBackend
from tests.servers import GatewayServer, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

CLUSTER = "local-hpc"
STREAM_BODY_LIMIT = 4096
SIDE_CHANNEL = "/resource_server/api/streaming"


@pytest.fixture(scope="module")
def pbs(tmp_path_factory: pytest.TempPathFactory) -> FakePBS:
    return FakePBS(tmp_path_factory.mktemp("pbs"), CLUSTER, ["fake-model", "hidden-model"])


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend, pbs: FakePBS
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("local-compute")
    endpoint_uuid = str(uuid.uuid4())
    config = {
        "api_port": backend.port,
        "endpoint_uuid": endpoint_uuid,
        "function_uuid": INFERENCE.local_uuid,
    }
    status_config = {
        "qstat_endpoint_uuid": endpoint_uuid,
        "qstat_function_uuid": PBS_STATUS.local_uuid,
    }
    fixtures = write_fixtures(
        tmp / "fixtures",
        [
            cluster_row(1, CLUSTER, status_config),
            cluster_row(2, "direct", {}, adapter=DIRECT_CLUSTER),
        ],
        [
            endpoint_row(1, CLUSTER, "fake-model", config),
            endpoint_row(2, CLUSTER, "hidden-model", config, allowed_domains=["example.org"]),
        ],
    )
    port = free_port()
    env = {
        **local_executor_env(port),
        "INTERNAL_STREAMING_SECRET": STREAMING_SECRET,
        "STREAMING_MAX_BODY_BYTES": str(STREAM_BODY_LIMIT),
        "STREAMING_IDLE_TIMEOUT": "5",
        "PATH": f"{pbs.bin}{os.pathsep}{os.environ['PATH']}",
        "USER": "svc_inference",
    }
    with GatewayServer(tmp, fixtures=fixtures, env=env, port=port) as server:
        yield server


@pytest.fixture(scope="module")
def client(gateway: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gateway.url}/resource_server/{CLUSTER}/vllm/v1",
        api_key=gateway.api_key,
        max_retries=0,
        timeout=20,
    )


def test_chat_completion(client: openai.OpenAI, backend: FakeBackend) -> None:
    answer = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "local run"}]
    )

    assert answer.choices[0].message.content == "Echo: local run"
    assert answer.usage is not None and answer.usage.total_tokens > 0


def test_chat_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "a b c"}],
        stream=True,
        extra_body={"fake": {"chunks": 30}},
    )

    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]

    assert "".join(pieces).startswith("Echo: a b c w")
    assert len([p for p in pieces if p]) >= 30


def test_completions_stream_without_done_from_the_server(gateway: GatewayServer) -> None:
    response = requests.post(
        f"{gateway.url}/resource_server/{CLUSTER}/vllm/v1/completions",
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        json={
            "model": "fake-model",
            "prompt": "no done marker",
            "stream": True,
            "fake": {"no_done": True},
        },
        stream=True,
        timeout=20,
    )
    body = response.content.decode()

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [event for event in body.split("\n\n") if event]
    assert events[-1] == "data: [DONE]"
    assert all(event.startswith("data: {") for event in events[:-1])
    assert '"error"' not in body


def test_backend_dying_mid_stream_ends_with_an_error_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_body={"fake": {"chunks": 20, "stop_after": 3}},
    )

    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass

    assert "stream broke off" in caught.value.message


def test_inference_server_400_on_a_stream(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_body={"fake": {"status": 400}},
        )

    assert caught.value.body == {
        "message": "fake failure with status 400",
        "type": "invalid_request_error",
        "param": None,
        "code": "upstream_error",
        "info": {"cluster": CLUSTER, "model": "fake-model", "upstream_status": 400},
    }


def _post(
    gateway: GatewayServer,
    kind: str,
    body: object,
    secret: str = STREAMING_SECRET,
    token: str = "",
) -> requests.Response:
    return requests.post(
        f"{gateway.url}{SIDE_CHANNEL}/{kind}/",
        json=body,
        headers={"X-Internal-Secret": secret, "X-Stream-Task-Token": token},
        timeout=10,
    )


def test_side_channel_abuse_is_refused_without_disturbing_a_live_stream(
    gateway: GatewayServer, client: openai.OpenAI
) -> None:
    received: list[str] = []
    failures: list[BaseException] = []

    def consume() -> None:
        try:
            stream = client.chat.completions.create(
                model="fake-model",
                messages=[{"role": "user", "content": "steady"}],
                stream=True,
                extra_body={"fake": {"chunks": 25, "chunk_delay": 0.04}},
            )
            received.extend(c.choices[0].delta.content or "" for c in stream if c.choices)
        except BaseException as exc:
            failures.append(exc)

    live = threading.Thread(target=consume)
    live.start()
    wait_until(lambda: bool(received) or bool(failures))  # the stream is flowing

    other_task = str(uuid.uuid4())
    answers = {
        "bad secret": _post(gateway, "data", {"task_id": other_task, "data": "x"}, "wrong"),
        "no secret": requests.post(f"{gateway.url}{SIDE_CHANNEL}/done/", json={}, timeout=10),
        "forged token": _post(
            gateway, "error", {"task_id": other_task, "error": "boom"}, token="1999999999.abc"
        ),
        # A real token, for another task: tokens are bound to their task.
        "wrong task": _post(
            gateway,
            "done",
            {"task_id": other_task, "type": "done"},
            token=issue_token(str(uuid.uuid4()), 60),
        ),
        "closed task": _post(
            gateway, "data", {"task_id": other_task, "data": "x"}, token=issue_token(other_task, 60)
        ),
        "expired token": _post(
            gateway, "data", {"task_id": other_task, "data": "x"}, token=issue_token(other_task, -5)
        ),
        "not a string": _post(
            gateway, "data", {"task_id": other_task, "data": 5}, token=issue_token(other_task, 60)
        ),
        "wrong type": _post(
            gateway,
            "data",
            {"task_id": other_task, "type": "done"},
            token=issue_token(other_task, 60),
        ),
    }
    oversized = requests.post(
        f"{gateway.url}{SIDE_CHANNEL}/data/",
        # A generator body goes out chunked, with no Content-Length to refuse it by.
        data=(b"x" * 1024 for _ in range(8)),
        headers={"X-Internal-Secret": STREAMING_SECRET, "Content-Type": "application/json"},
        timeout=10,
    )
    not_json = requests.post(
        f"{gateway.url}{SIDE_CHANNEL}/data/",
        data=b"{not json",
        headers={"X-Internal-Secret": STREAMING_SECRET},
        timeout=10,
    )
    live.join(30)

    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "bad secret": 401,
        "no secret": 401,
        "forged token": 403,
        "wrong task": 403,
        "closed task": 410,
        "expired token": 403,
        "not a string": 400,
        "wrong type": 400,
    }
    assert answers["bad secret"].json() == {
        "error": {
            "message": "The X-Internal-Secret header is missing or wrong.",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_internal_secret",
        }
    }
    assert answers["forged token"].json()["error"] == {
        "message": "The X-Stream-Task-Token header does not grant access to this task, "
        "or has expired.",
        "type": "permission_error",
        "param": None,
        "code": "invalid_stream_token",
    }
    assert answers["closed task"].json()["error"]["message"] == (
        f"Stream {other_task} is not open: its client went away, it timed out, or it ended."
    )
    assert answers["not a string"].json()["error"]["message"] == "'data' must be a string."
    assert answers["wrong type"].json()["error"]["message"] == (
        "'type' is 'done' but this route takes 'data' messages."
    )
    assert oversized.status_code == 413
    assert oversized.json()["error"]["message"] == (
        f"The request body is larger than the limit of {STREAM_BODY_LIMIT} bytes."
    )
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == "invalid_json"
    # The live stream went on, whole and in order.
    assert failures == []
    words = "".join(received).split()
    assert words[:2] == ["Echo:", "steady"]
    assert words[2:] == [f"w{i}" for i in range(2, 25)]


def test_side_channel_path_without_trailing_slash_is_not_a_different_route(
    gateway: GatewayServer,
) -> None:
    answer = _post(gateway, "data", {"task_id": "t", "data": "x"}, "wrong")
    assert answer.status_code == 401


def test_jobs_filtered_per_caller_and_cached_per_cluster(
    gateway: GatewayServer, pbs: FakePBS
) -> None:
    partner = gateway.create_api_key("partner", "--domain", "example.org")
    url = f"{gateway.url}/resource_server/{CLUSTER}/jobs"

    mine = requests.get(url, headers={"Authorization": f"Bearer {gateway.api_key}"}, timeout=20)
    theirs = requests.get(url, headers={"Authorization": f"Bearer {partner}"}, timeout=20)

    assert mine.status_code == 200, mine.text
    assert mine.json() == {
        "running": [
            {
                "Models": "fake-model",
                "Framework": "vllm",
                "Cluster": CLUSTER,
                "Model Status": "running",
                "Job ID": "3001.pbs",
                "Job State": "R",
                "Host Name": "node-1/0*64",
                "Job Comments": "N/A",
                "Nodes Reserved": "1",
                "Walltime": "N/A",
                "Estimated Start Time": "N/A",
            }
        ],
        # The queued job's model is not in the catalog: nobody sees it.
        "queued": [],
        "stopped": [],
        "others": [],
        "private_batch_running": [],
        "private_batch_queued": [],
        "cluster_status": {"free_nodes": 2},
    }
    assert theirs.json()["running"][0]["Models"] == "fake-model,hidden-model"
    # One run of the status function served both callers.
    assert pbs.qselect_calls == 1


def test_jobs_errors(gateway: GatewayServer) -> None:
    headers = {"Authorization": f"Bearer {gateway.api_key}"}

    unknown = requests.get(f"{gateway.url}/resource_server/nowhere/jobs", headers=headers)
    direct = requests.get(f"{gateway.url}/resource_server/direct/jobs", headers=headers)
    anonymous = requests.get(f"{gateway.url}/resource_server/{CLUSTER}/jobs")

    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "message": f"There is no cluster 'nowhere'. Clusters you may use: 'direct', '{CLUSTER}'.",
        "type": "not_found_error",
        "param": None,
        "code": "cluster_not_found",
    }
    assert direct.status_code == 501
    assert direct.json()["error"]["message"] == (
        "Cluster 'direct' does not report jobs (its adapter is DirectAPICluster)."
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "missing_credentials"


# --- records (accounting) ----------------------------------------------------------------------


def _record(gateway: GatewayServer, request_id: str) -> dict:
    found: list[dict] = []

    def written() -> bool:
        found[:] = fetch_records(gateway.env["DATABASE_URL"], "request_id = ?", (request_id,))
        return bool(found)

    wait_until(written)
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("stream", [False, True])
def test_a_compute_request_is_recorded_with_its_task_and_the_functions_timing(
    gateway: GatewayServer, client: openai.OpenAI, stream: bool
) -> None:
    rid = f"compute-{uuid.uuid4().hex[:12]}"
    answer = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "timed run"}],
        stream=stream,
        extra_headers={"x-request-id": rid},
    )
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)  # type: ignore[union-attr]
        assert text == "Echo: timed run"
    record = _record(gateway, rid)
    assert record["status"] == 200 and bool(record["stream"]) is stream
    assert record["cluster"] == CLUSTER and record["endpoint_slug"] == f"{CLUSTER}-vllm-fake-model"
    assert record["compute_task_id"]  # the local executor's task id
    # The function's own figures (compute_functions/inference.py), not the gateway's.
    assert record["response_time"] is not None and record["response_time"] > 0
    assert record["throughput_tokens_per_second"] is not None
    assert record["throughput_tokens_per_second"] > 0
    assert record["total_tokens"]
