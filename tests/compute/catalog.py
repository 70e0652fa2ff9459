"""Fixture files (loaddata JSON) with Globus Compute clusters and endpoints, for gateway runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from django.utils.text import slugify

GLOBUS_CLUSTER = "resource_server_async.clusters.globus_compute.GlobusComputeCluster"
GLOBUS_ENDPOINT = "resource_server_async.endpoints.globus_compute.GlobusComputeEndpoint"
DIRECT_CLUSTER = "resource_server_async.clusters.direct_api.DirectAPICluster"
OPERATIONS = ["chat/completions", "completions", "embeddings"]


def cluster_row(
    pk: int, name: str, config: dict[str, Any], adapter: str = GLOBUS_CLUSTER
) -> dict[str, Any]:
    return {
        "model": "resource_server_async.cluster",
        "pk": pk,
        "fields": {
            "cluster_name": name,
            "cluster_adapter": adapter,
            "frameworks": ["vllm"],
            "openai_endpoints": OPERATIONS,
            "allowed_globus_groups": [],
            "allowed_domains": [],
            "config": config,
        },
    }


def endpoint_row(
    pk: int,
    cluster: str,
    model: str,
    config: dict[str, Any],
    allowed_domains: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "model": "resource_server_async.endpoint",
        "pk": pk,
        "fields": {
            "endpoint_slug": slugify(" ".join([cluster, "vllm", model.lower()])),
            "cluster": cluster,
            "framework": "vllm",
            "model": model,
            "endpoint_adapter": GLOBUS_ENDPOINT,
            "allowed_globus_groups": [],
            "allowed_domains": allowed_domains or [],
            "config": config,
        },
    }


def write_fixtures(
    directory: Path, clusters: list[dict[str, Any]], endpoints: list[dict[str, Any]]
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "clusters.json", directory / "endpoints.json"]
    for path, rows in zip(paths, (clusters, endpoints), strict=True):
        path.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return paths


def local_executor_env(streaming_port: int) -> dict[str, str]:
    """Gateway settings that run Globus Compute endpoints on this machine (the local executor),
    with the model server on plain http and streams coming back to `streaming_port`."""
    return {
        "COMPUTE_EXECUTOR": "local",
        "INFERENCE_API_BASE_URL": "http://127.0.0.1:{api_port}",
        "STREAMING_SERVER_HOST": "127.0.0.1",
        "STREAMING_SERVER_PORT": str(streaming_port),
        "STREAMING_SERVER_PROTOCOL": "http",
    }


def create_hpc_rows(
    backend_port: int,
    endpoint_uuid: str,
    function_uuid: str,
    status_function_uuid: str,
    operations: list[str],
) -> None:
    """Database rows of a Globus Compute cluster "hpc" serving "fake-model" from the backend."""
    from resource_server_async.models import Cluster, Endpoint

    Cluster.objects.create(
        cluster_name="hpc",
        cluster_adapter=GLOBUS_CLUSTER,
        frameworks=["vllm"],
        openai_endpoints=operations,
        config={"qstat_endpoint_uuid": endpoint_uuid, "qstat_function_uuid": status_function_uuid},
    )
    Endpoint.objects.create(
        endpoint_slug="hpc-vllm-fake-model",
        cluster="hpc",
        framework="vllm",
        model="fake-model",
        endpoint_adapter=GLOBUS_ENDPOINT,
        config={
            "api_port": backend_port,
            "endpoint_uuid": endpoint_uuid,
            "function_uuid": function_uuid,
        },
    )
