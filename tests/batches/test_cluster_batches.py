"""The reference gateway's cluster batch routes: a file on the cluster's filesystem, run by the
batch function through the local executor against the fake backend, tracked by the worker;
paths outside the cluster's roots refused; MAX_BATCHES_PER_USER."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest

from resource_server_async.compute.functions import BATCH, INFERENCE, PBS_STATUS
from tests.batches.conftest import Workers, chat_line, jsonl, read_jsonl
from tests.compute.catalog import cluster_row, endpoint_row, local_executor_env, write_fixtures
from tests.fake_backend import FakeBackend
from tests.servers import GatewayServer, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

SUBMIT = "/resource_server/hpc/vllm/v1/batches"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("project-space")


@pytest.fixture(scope="module")
def hpc_gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend, root: Path
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("cluster-batches")
    endpoint_uuid = str(uuid.uuid4())
    config = {
        "api_port": backend.port,
        "endpoint_uuid": endpoint_uuid,
        "function_uuid": INFERENCE.local_uuid,
        "batch_endpoint_uuid": endpoint_uuid,
        "batch_function_uuid": BATCH.local_uuid,
    }
    status = {"qstat_endpoint_uuid": endpoint_uuid, "qstat_function_uuid": PBS_STATUS.local_uuid}
    fixtures = write_fixtures(
        tmp / "fixtures",
        [cluster_row(1, "hpc", status)],
        [endpoint_row(1, "hpc", "fake-model", config)],
    )
    port = free_port()
    env = {
        **local_executor_env(port),
        "BATCH_CLUSTER_ROOTS": orjson.dumps({"hpc": [str(root)]}).decode(),
        "MAX_BATCHES_PER_USER": "2",
        "BATCH_POLL_SECONDS": "0.05",
    }
    with GatewayServer(tmp, fixtures=fixtures, env=env, port=port) as server:
        yield server


def _call(gateway: GatewayServer, method: str, path: str, key: str = "", **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {key or gateway.api_key}"}
    return httpx.request(method, f"{gateway.url}{path}", headers=headers, timeout=20, **kw)


def test_a_cluster_batch_runs_the_batch_function_and_keeps_its_result(
    hpc_gateway: GatewayServer, root: Path, tmp_path: Path
) -> None:
    source = root / "questions.jsonl"
    source.write_bytes(jsonl([chat_line(f"c{n}", f"cluster {n}") for n in range(3)]))
    submitted = _call(
        hpc_gateway,
        "POST",
        SUBMIT,
        json={"input_file": str(source), "model": "fake-model", "output_folder_path": "out"},
    )
    assert submitted.status_code == 200, submitted.text
    created = submitted.json()
    assert created["status"] == "pending" and created["input_file"] == str(source)
    assert created["output_folder_path"] == str(root / "out")
    batch_id = created["batch_id"]

    workers = Workers(hpc_gateway, tmp_path)
    workers.start()
    try:
        path = f"/resource_server/v1/batches/{batch_id}"
        wait_until(lambda: _call(hpc_gateway, "GET", path).json()["status"] == "completed", 30)
    finally:
        workers.stop_all()
    described = _call(hpc_gateway, "GET", path).json()
    assert described["cluster"] == "hpc" and len(described["task_ids"]) == 1
    result = _call(hpc_gateway, "GET", f"{path}/result").json()
    assert result["metrics"]["lines_processed"] == 3
    assert result["metrics"]["num_responses"] == 3 and result["metrics"]["total_tokens"] > 0
    results = Path(result["results_file"])
    assert results.parent.parent == root / "out"
    answers = read_jsonl(results.read_bytes())
    assert [a["custom_id"] for a in answers] == ["c0", "c1", "c2"]
    assert answers[0]["response"]["body"]["choices"][0]["message"]["content"] == "Echo: cluster 0"
    listed = _call(hpc_gateway, "GET", "/resource_server/v1/batches?status=completed").json()
    assert batch_id in [b["batch_id"] for b in listed]
    assert _call(hpc_gateway, "GET", "/resource_server/v1/batches?status=failed").json() == []


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("input_file", "../outside.jsonl"),
        ("input_file", "sub/../../outside.jsonl"),
        ("input_file", "/etc/passwd"),
        ("input_file", "escape/passwd"),  # a symbolic link inside the root, to /etc
        ("output_folder_path", "/tmp"),
        ("output_folder_path", "escape"),
    ],
)
def test_paths_outside_the_clusters_roots_are_refused(
    hpc_gateway: GatewayServer, root: Path, field: str, path: str
) -> None:
    (root / "ok.jsonl").write_bytes(jsonl([chat_line("x")]))
    if not (root / "escape").exists():
        (root / "escape").symlink_to("/etc")
    body = {"input_file": str(root / "ok.jsonl"), "model": "fake-model", field: path}
    refused = _call(hpc_gateway, "POST", SUBMIT, json=body)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "path_not_allowed" and error["param"] == field


def test_max_batches_per_user_bounds_pending_cluster_batches(
    hpc_gateway: GatewayServer, root: Path
) -> None:
    key = hpc_gateway.create_api_key("busy")
    (root / "ok.jsonl").write_bytes(jsonl([chat_line("x")]))
    body = {"input_file": "ok.jsonl", "model": "fake-model"}  # relative: from the first root
    for _ in range(2):
        assert _call(hpc_gateway, "POST", SUBMIT, key, json=body).status_code == 200
    refused = _call(hpc_gateway, "POST", SUBMIT, key, json=body)
    assert refused.status_code == 429 and "MAX_BATCHES_PER_USER" in refused.text
    pending = _call(hpc_gateway, "GET", "/resource_server/v1/batches?status=pending", key).json()
    assert len(pending) == 2 and all(b["input_file"] == str(root / "ok.jsonl") for b in pending)
    # Another principal sees none of them.
    other = hpc_gateway.create_api_key("other")
    for batch in pending:
        path = f"/resource_server/v1/batches/{batch['batch_id']}"
        assert _call(hpc_gateway, "GET", path, other).status_code == 404
