"""Job lists: the status function's answer read leniently, filtered per caller; status pages
(Metis, DirectAPI with status_url), read through the same fetch as the Live check."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from resource_server_async.api.views.jobs import mark_unready
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.snapshot import build_snapshot, catalog
from resource_server_async.catalog.validation import expected_slug
from resource_server_async.clusters.base import ClusterRow
from resource_server_async.clusters.direct_api import DirectAPICluster, DirectAPIClusterConfig
from resource_server_async.clusters.jobs import (
    JOB_LISTS,
    ClusterJobs,
    jobs_from_report,
    jobs_from_status_page,
)
from resource_server_async.clusters.metis import MetisCluster, MetisClusterConfig
from resource_server_async.compute import build_executor
from resource_server_async.compute.base import ComputeNotConfigured
from resource_server_async.endpoints.base import EndpointRow
from resource_server_async.errors import GatewayError
from resource_server_async.inference.visibility import visible_jobs
from resource_server_async.runtime import Runtime
from tests.compute.catalog import DIRECT_CLUSTER, GLOBUS_CLUSTER, GLOBUS_ENDPOINT
from tests.fake_backend import FakeBackend

DIRECT_ENDPOINT = "resource_server_async.endpoints.direct_api.DirectAPIEndpoint"

ANYONE = Principal(id="api_key:1", username="anyone", kind="api_key")
PARTNER = Principal(id="api_key:2", username="partner", kind="api_key", idp_domain="example.org")
UUID = "5a1d1f0e-0c4b-4a8e-9d3f-2b7c6e5d4a3b"


@pytest.fixture
def hpc_catalog() -> Iterator[None]:
    config = {"api_port": 8000, "endpoint_uuid": UUID, "function_uuid": UUID}
    endpoints = [
        EndpointRow(
            slug=expected_slug("hpc", "vllm", model),
            cluster="hpc",
            framework="vllm",
            model=model,
            adapter_path=GLOBUS_ENDPOINT,
            allowed_domains=frozenset(domains),
            config=config,
        )
        for model, domains in (("open-model", []), ("partner-model", ["example.org"]))
    ]
    cluster = ClusterRow(
        name="hpc",
        adapter_path=GLOBUS_CLUSTER,
        frameworks=("vllm",),
        openai_endpoints=("chat/completions",),
        config={"qstat_endpoint_uuid": UUID, "qstat_function_uuid": UUID},
    )
    previous = catalog.snapshot
    catalog.snapshot = build_snapshot([cluster], endpoints)
    yield
    catalog.snapshot = previous


def _job(models: str, **extra: Any) -> dict[str, Any]:
    return {"Models": models, "Framework": "vllm", "Cluster": "hpc", "Job ID": "1", **extra}


def test_report_is_read_leniently() -> None:
    report = {
        "running": [_job("a"), "not a job", {"Models": "  ", "Job ID": "2"}],
        "private-batch-queued": [_job("batch_job")],
        "queued": "not a list",
        "cluster_status": {"free_nodes": 3},
    }

    jobs = jobs_from_report(report, "hpc")

    assert list(jobs.lists) == list(JOB_LISTS)
    assert jobs.lists["running"] == [
        _job("a"),
        {"Models": "N/A", "Framework": "N/A", "Cluster": "hpc", "Job ID": "2"},
    ]
    assert jobs.lists["private_batch_queued"] == [_job("batch_job")]
    assert jobs.lists["queued"] == [] and jobs.lists["stopped"] == []
    assert jobs.cluster_status == {"free_nodes": 3}
    assert jobs_from_report('{"running": []}', "hpc").lists["running"] == []
    with pytest.raises(ValueError, match="returned list, not an object"):
        jobs_from_report("[]", "hpc")


@pytest.mark.usefixtures("hpc_catalog")
def test_each_caller_sees_only_the_models_they_may_use() -> None:
    jobs = ClusterJobs(
        {
            **{name: [] for name in JOB_LISTS},
            "running": [_job("open-model, partner-model,unknown-model", **{"Model Status": "x"})],
            "queued": [_job("partner-model"), _job("unknown-model")],
            # Status pages may name another framework: the model on this cluster still counts.
            "stopped": [_job("open-model", Framework="api")],
        },
        {"free_nodes": 1},
    )

    anyone = visible_jobs(jobs, ANYONE, "hpc").as_dict()
    partner = visible_jobs(jobs, PARTNER, "hpc")

    assert anyone["running"] == [_job("open-model", **{"Model Status": "x"})]
    assert anyone["queued"] == []
    assert anyone["stopped"] == [_job("open-model", Framework="api")]
    assert anyone["cluster_status"] == {"free_nodes": 1}
    assert partner.lists["running"][0]["Models"] == "open-model,partner-model"
    assert [job["Models"] for job in partner.lists["queued"]] == ["partner-model"]
    (_, endpoints) = partner.running_endpoints[0]
    assert [endpoint.model for endpoint in endpoints] == ["open-model", "partner-model"]
    # The cached list, shared by every caller, is left as it was.
    assert jobs.lists["running"][0]["Models"] == "open-model, partner-model,unknown-model"


def test_status_page_as_jobs() -> None:
    document = {
        "m1": {"status": "Live", "model": "live-model", "description": "fast", "model_version": 2},
        "m2": {"status": "Stopped", "model": "stopped-model"},
        "m3": {"status": "Loading", "model": "loading-model"},
        "m4": "garbage",
    }

    jobs = jobs_from_status_page(document, "metis", "api")

    assert jobs.lists["running"] == [
        {
            "Models": "live-model",
            "Framework": "api",
            "Cluster": "metis",
            "Model Status": "running",
            "Description": "live-model - fast",
            "Model Version": 2,
        }
    ]
    assert [job["Models"] for job in jobs.lists["stopped"]] == ["stopped-model"]
    assert [job["Model Status"] for job in jobs.lists["queued"]] == ["loading"]
    assert jobs.cluster_status == {
        "cluster": "metis",
        "total_models": 4,
        "live_models": 1,
        "stopped_models": 1,
    }


@pytest.fixture
def upstream_pool(runtime: Runtime) -> Runtime:
    """The status page is fetched through the runtime's pooled sessions."""
    return runtime


def _metis(url: str, timeout: float = 2) -> MetisCluster:
    config = {"status_url": url, "api_request_timeout": timeout}
    row = ClusterRow(
        name="metis",
        adapter_path="resource_server_async.clusters.metis.MetisCluster",
        frameworks=("api",),
        openai_endpoints=("chat/completions",),
        config=config,
    )
    return MetisCluster(row, MetisClusterConfig(**config))


@pytest.mark.usefixtures("upstream_pool")
async def test_metis_jobs_from_its_status_page(backend: FakeBackend) -> None:
    backend.status_document.clear()
    backend.status_document.update({"k": {"status": "Live", "model": "live-model"}})
    try:
        jobs = await _metis(f"{backend.url}/status").jobs()
    finally:
        backend.status_document.clear()

    assert [job["Models"] for job in jobs.lists["running"]] == ["live-model"]
    assert jobs.cluster_status["live_models"] == 1


@pytest.mark.usefixtures("upstream_pool")
async def test_metis_status_page_failing(backend: FakeBackend) -> None:
    backend.status_http_status = 500
    try:
        with pytest.raises(GatewayError) as caught:
            await _metis(f"{backend.url}/status").jobs()
    finally:
        backend.status_http_status = 200

    assert caught.value.status == 502
    assert caught.value.code == "jobs_failed"
    assert caught.value.message == (
        "The status page of cluster 'metis' could not be read: it answered HTTP 500"
    )


def test_experts_of_an_entry_are_its_models_as_for_the_live_check() -> None:
    document = {"k": {"status": "Live", "model": "router", "experts": ["a", " b ", 3, "a", ""]}}

    jobs = jobs_from_status_page(document, "metis", "api")

    assert [job["Models"] for job in jobs.lists["running"]] == ["router,a,b"]


@pytest.mark.usefixtures("upstream_pool")
async def test_live_check_and_jobs_share_one_fetch(backend: FakeBackend) -> None:
    backend.status_document.clear()
    backend.status_document.update({"k": {"status": "Live", "model": "live-model"}})
    cluster = _metis(f"{backend.url}/status")
    assert cluster.status_page is not None
    before = len(backend.requests_to("/status"))
    try:
        states = await asyncio.gather(
            *(cluster.status_page.state_of("live-model") for _ in range(3))
        )
        jobs = await cluster.jobs()
        again = await cluster.jobs()
    finally:
        backend.status_document.clear()

    assert states == ["Live"] * 3
    assert [job["Models"] for job in jobs.lists["running"]] == ["live-model"]
    assert again == jobs
    assert len(backend.requests_to("/status")) - before == 1


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A status URL whose server takes the connection and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # connections wait in the backlog: connected, never answered
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/status"


@pytest.mark.usefixtures("upstream_pool")
async def test_a_status_page_that_never_answers(silent_server: str) -> None:
    cluster = _metis(silent_server, timeout=0.2)
    assert cluster.status_page is not None

    with pytest.raises(GatewayError) as jobs_error:
        await cluster.jobs()
    with pytest.raises(GatewayError) as live_error:
        await cluster.status_page.state_of("live-model")

    # One failed read, worded for each caller.
    assert (jobs_error.value.status, jobs_error.value.code, jobs_error.value.message) == (
        504,
        "jobs_timeout",
        "The status page of cluster 'metis' did not answer within 0.2 s.",
    )
    assert (live_error.value.status, live_error.value.code, live_error.value.message) == (
        503,
        "cluster_status_unavailable",
        "The status of cluster 'metis' cannot be read (timed out), so the gateway cannot tell "
        "whether the model is running. Try again later.",
    )


async def test_direct_api_cluster_without_status_page_reports_no_jobs() -> None:
    row = ClusterRow(
        name="direct",
        adapter_path="resource_server_async.clusters.direct_api.DirectAPICluster",
        frameworks=("vllm",),
        openai_endpoints=("chat/completions",),
    )
    cluster = DirectAPICluster(row, DirectAPIClusterConfig())

    with pytest.raises(GatewayError) as caught:
        await cluster.jobs()

    assert (caught.value.status, caught.value.code, caught.value.message) == (
        501,
        "jobs_not_supported",
        "Cluster 'direct' does not report jobs (its adapter is DirectAPICluster).",
    )


async def test_jobs_without_compute_endpoints_need_no_executor(settings: Settings) -> None:
    # An executor kind that cannot be built: fetching one would answer 503 (ComputeNotConfigured).
    settings.COMPUTE_EXECUTOR = "not-an-executor"
    cluster = ClusterRow(
        name="web",
        adapter_path=DIRECT_CLUSTER,
        frameworks=("api",),
        openai_endpoints=("chat/completions",),
        config={},
    )
    endpoint = EndpointRow(
        slug=expected_slug("web", "api", "served-model"),
        cluster="web",
        framework="api",
        model="served-model",
        adapter_path=DIRECT_ENDPOINT,
        config={"api_url": "http://127.0.0.1:9/v1"},
    )
    previous = catalog.snapshot
    catalog.snapshot = build_snapshot([cluster], [endpoint])
    try:
        running = _job("served-model", Framework="api", Cluster="web", Walltime="1:00")
        jobs = ClusterJobs({**{name: [] for name in JOB_LISTS}, "running": [running]}, {})
        visible = visible_jobs(jobs, ANYONE, "web")

        await mark_unready(visible.running_endpoints)
    finally:
        catalog.snapshot = previous

    assert len(visible.running_endpoints) == 1
    assert visible.lists["running"] == [running]
    with pytest.raises(ComputeNotConfigured):
        build_executor()  # the executor really could not have been built
