"""Builders of fixture rows and files for the configuration tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GC_ENDPOINT = "resource_server_async.endpoints.globus_compute.GlobusComputeEndpoint"
GC_CLUSTER = "resource_server_async.clusters.globus_compute.GlobusComputeCluster"
DIRECT_ENDPOINT = "resource_server_async.endpoints.direct_api.DirectAPIEndpoint"
DIRECT_CLUSTER = "resource_server_async.clusters.direct_api.DirectAPICluster"


def cluster_row(pk: int = 1, **fields: Any) -> dict[str, Any]:
    base = {
        "cluster_name": "sophia",
        "cluster_adapter": GC_CLUSTER,
        "frameworks": ["vllm"],
        "openai_endpoints": ["chat/completions", "completions", "embeddings"],
        "allowed_globus_groups": [],
        "allowed_domains": [],
        "config": {"qstat_endpoint_uuid": "e-uuid", "qstat_function_uuid": "f-uuid"},
    }
    base.update(fields)
    return {"model": "resource_server_async.cluster", "pk": pk, "fields": base}


def endpoint_row(pk: int = 1, **fields: Any) -> dict[str, Any]:
    base = {
        "endpoint_slug": "sophia-vllm-meta-llamameta-llama-31-70b-instruct",
        "cluster": "sophia",
        "framework": "vllm",
        "model": "meta-llama/Meta-Llama-3.1-70B-Instruct",
        "endpoint_adapter": GC_ENDPOINT,
        "allowed_globus_groups": [],
        "allowed_domains": [],
        "config": {"api_port": 8000, "endpoint_uuid": "e-uuid", "function_uuid": "f-uuid"},
    }
    base.update(fields)
    return {"model": "resource_server_async.endpoint", "pk": pk, "fields": base}


def write_fixture(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(rows, indent=4))
    return path
