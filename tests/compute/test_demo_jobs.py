"""/jobs of the demo's `local-compute` cluster, which has no scheduler: its model is listed as
running from its endpoint's state instead of a 502 from `qselect` (issue 9, item 21)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from pydantic import ValidationError

from resource_server_async.clusters.globus_compute import GlobusComputeClusterConfig
from resource_server_async.clusters.jobs import JOB_LISTS, NOT_AVAILABLE, jobs_from_endpoint_states
from resource_server_async.compute.base import EndpointState
from resource_server_async.endpoints.base import EndpointRow
from tests.compute.catalog import local_executor_env
from tests.servers import GatewayServer, free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "demo" / "local_compute.json"
MODEL = "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def demo_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("demo-jobs")
    port = free_port()
    with GatewayServer(tmp, fixtures=[DEMO], env=local_executor_env(port), port=port) as server:
        yield server


@pytest.mark.e2e
def test_demo_cluster_lists_its_local_model_as_running(demo_gateway: GatewayServer) -> None:
    # The point: this machine has no scheduler, as a demo machine does not.
    assert shutil.which("qselect") is None

    answer = httpx2.get(
        f"{demo_gateway.url}/resource_server/local-compute/jobs",
        headers={"Authorization": f"Bearer {demo_gateway.api_key}"},
        timeout=20,
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(job["Models"], job["Model Status"]) for job in body["running"]] == [(MODEL, "running")]
    job = body["running"][0]
    assert (job["Framework"], job["Cluster"], job["Job ID"]) == (
        "llama-cpp",
        "local-compute",
        NOT_AVAILABLE,
    )
    assert all(body[name] == [] for name in JOB_LISTS if name != "running")
    assert body["cluster_status"] == {
        "cluster": "local-compute",
        "total_models": 1,
        "live_models": 1,
        "stopped_models": 0,
    }


def _row(model: str) -> EndpointRow:
    return EndpointRow(
        slug=f"c-llama-cpp-{model}",
        cluster="c",
        framework="llama-cpp",
        model=model,
        adapter_path="resource_server_async.endpoints.globus_compute.GlobusComputeEndpoint",
    )


def test_endpoint_states_place_each_model() -> None:
    jobs = jobs_from_endpoint_states(
        [
            (_row("up"), EndpointState("online", workers=2, detail="local executor")),
            (_row("down"), EndpointState("offline")),
            (_row("unsure"), EndpointState("unknown", detail="no credentials")),
        ],
        "c",
    )

    placed = {
        name: [(job["Models"], job["Model Status"]) for job in jobs.lists[name]]
        for name in ("running", "stopped", "others")
    }
    assert placed == {
        "running": [("up", "running")],
        "stopped": [("down", "stopped")],
        "others": [("unsure", "unknown")],
    }
    assert jobs.lists["running"][0]["Description"] == "local executor"
    assert jobs.cluster_status["total_models"] == 3


def test_a_scheduler_cluster_still_needs_its_status_function() -> None:
    with pytest.raises(ValidationError, match="qstat_endpoint_uuid and qstat_function_uuid"):
        GlobusComputeClusterConfig(qstat_endpoint_uuid="e")

    assert GlobusComputeClusterConfig(jobs_from="endpoints").qstat_function_uuid is None
    with pytest.raises(ValidationError):
        GlobusComputeClusterConfig(jobs_from="qstat")  # type: ignore[arg-type]
