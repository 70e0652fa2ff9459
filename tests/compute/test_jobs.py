"""Job lists: the status function's answer read leniently, filtered per caller; Metis pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from resource_server_async.auth.principal import Principal
from resource_server_async.catalog import build_snapshot, catalog
from resource_server_async.clusters.base import ClusterRow
from resource_server_async.clusters.jobs import (
    JOB_LISTS,
    ClusterJobs,
    jobs_from_report,
    jobs_from_status_page,
    visible_jobs,
)
from resource_server_async.clusters.metis import MetisCluster, MetisClusterConfig
from resource_server_async.endpoints.base import EndpointRow
from resource_server_async.errors import GatewayError
from resource_server_async.upstream import clients
from resource_server_async.validation import expected_slug
from tests.compute.catalog import GLOBUS_CLUSTER, GLOBUS_ENDPOINT
from tests.fake_backend import FakeBackend

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
async def upstream_pool() -> AsyncIterator[None]:
    """The status page is fetched through the process's pooled sessions: close this loop's."""
    yield
    await clients.close()


def _metis(url: str) -> MetisCluster:
    config = {"status_url": url, "api_request_timeout": 2}
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
