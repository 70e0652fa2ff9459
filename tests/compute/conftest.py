"""Fixtures for the compute tests: the fake model backend, the fake Compute service, adapters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async.auth.principal import Principal
from resource_server_async.clusters.base import ClusterRow
from resource_server_async.clusters.globus_compute import (
    GlobusComputeCluster,
    GlobusComputeClusterConfig,
)
from resource_server_async.compute.functions import INFERENCE
from resource_server_async.endpoints.base import EndpointRow, InferenceRequest
from resource_server_async.endpoints.globus_compute import (
    GlobusComputeEndpoint,
    GlobusComputeEndpointConfig,
)
from tests.compute import fake_compute
from tests.compute.catalog import GLOBUS_CLUSTER, GLOBUS_ENDPOINT
from tests.compute.fake_compute import FakeComputeService
from tests.fake_backend import FakeBackend

STREAMING_SECRET = "test-streaming-secret-0123456789"


@pytest.fixture(scope="package")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("fake-model",)) as server:
        yield server


@pytest.fixture
def service() -> Iterator[FakeComputeService]:
    yield from fake_compute.fake_compute_service()


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster-side functions' environment: the model server over plain HTTP on loopback
    (its port is the endpoint's api_port), and the side channel's secret."""
    monkeypatch.setenv("INFERENCE_API_BASE_URL", "http://127.0.0.1:{api_port}")
    monkeypatch.setenv("INTERNAL_STREAMING_SECRET", STREAMING_SECRET)


@pytest.fixture
def globus_settings(settings: SettingsWrapper, function_env: None) -> SettingsWrapper:
    settings.COMPUTE_EXECUTOR = "globus"
    settings.SERVICE_ACCOUNT_ID = fake_compute.CLIENT_ID
    settings.SERVICE_ACCOUNT_SECRET = fake_compute.CLIENT_SECRET
    settings.GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES = {}
    settings.COMPUTE_POLL_INTERVAL = 0.02
    settings.COMPUTE_STATUS_CACHE_SECONDS = 0.0  # tests change endpoint states between calls
    settings.COMPUTE_RESULT_TIMEOUT = 15.0
    settings.COMPUTE_SERVICE_TIMEOUT = 5.0
    settings.INTERNAL_STREAMING_SECRET = STREAMING_SECRET
    settings.REDIS_URL = ""
    return settings


def make_endpoint(
    endpoint_uuid: str,
    function_uuid: str,
    api_port: int,
    model: str = "fake-model",
    cluster: str = "hpc",
) -> GlobusComputeEndpoint:
    cluster_config = {
        "qstat_endpoint_uuid": endpoint_uuid,
        "qstat_function_uuid": function_uuid,
    }
    cluster_adapter = GlobusComputeCluster(
        ClusterRow(
            name=cluster,
            adapter_path=GLOBUS_CLUSTER,
            frameworks=("vllm",),
            openai_endpoints=("chat/completions", "completions", "embeddings"),
            config=cluster_config,
        ),
        GlobusComputeClusterConfig(**cluster_config),
    )
    config = {"api_port": api_port, "endpoint_uuid": endpoint_uuid, "function_uuid": function_uuid}
    row = EndpointRow(
        slug=f"{cluster}-vllm-{model.lower()}",
        cluster=cluster,
        framework="vllm",
        model=model,
        adapter_path=GLOBUS_ENDPOINT,
        config=config,
    )
    return GlobusComputeEndpoint(row, GlobusComputeEndpointConfig(**config), cluster_adapter)


def chat_request(
    content: str = "hello there", stream: bool = False, **extra: Any
) -> InferenceRequest:
    body = {
        "model": "fake-model",
        "messages": [{"role": "user", "content": content}],
        "stream": stream,
        **extra,
    }
    return InferenceRequest(
        operation="chat/completions",
        body=body,
        raw=b"",
        principal=Principal(id="api_key:1", username="tester", kind="api_key"),
        request_id="test-request",
        stream=stream,
    )


@pytest.fixture
def inference_function(service: FakeComputeService) -> str:
    """The project's inference function, registered with the fake service as operators do."""
    return service.add_source_function(INFERENCE.source(), INFERENCE.entry_point)
