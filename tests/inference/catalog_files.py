"""Fixture files (Django loaddata JSON) describing test clusters and endpoints, written per run."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
from django.utils.text import slugify

DIRECT_CLUSTER = "resource_server_async.clusters.direct_api.DirectAPICluster"
METIS_CLUSTER = "resource_server_async.clusters.metis.MetisCluster"
DIRECT_ENDPOINT = "resource_server_async.endpoints.direct_api.DirectAPIEndpoint"
METIS_ENDPOINT = "resource_server_async.endpoints.metis.MetisEndpoint"
ALL_OPERATIONS = ["chat/completions", "completions", "embeddings", "responses"]


class CatalogFiles:
    """Collects cluster and endpoint rows, then writes clusters.json and endpoints.json."""

    def __init__(self) -> None:
        self.clusters: list[dict[str, Any]] = []
        self.endpoints: list[dict[str, Any]] = []
        self._pk = itertools.count(1)

    def cluster(
        self,
        name: str,
        *,
        frameworks: list[str] | None = None,
        operations: list[str] | None = None,
        adapter: str = DIRECT_CLUSTER,
        config: dict[str, Any] | None = None,
        allowed_domains: list[str] | None = None,
    ) -> None:
        self.clusters.append(
            {
                "model": "resource_server_async.cluster",
                "pk": len(self.clusters) + 1,
                "fields": {
                    "cluster_name": name,
                    "cluster_adapter": adapter,
                    "frameworks": frameworks or ["vllm"],
                    "openai_endpoints": ALL_OPERATIONS if operations is None else operations,
                    "allowed_globus_groups": [],
                    "allowed_domains": allowed_domains or [],
                    "config": config or {},
                },
            }
        )

    def endpoint(
        self,
        cluster: str,
        model: str,
        api_url: str,
        *,
        framework: str = "vllm",
        adapter: str = DIRECT_ENDPOINT,
        allowed_domains: list[str] | None = None,
        **config: Any,
    ) -> None:
        self.endpoints.append(
            {
                "model": "resource_server_async.endpoint",
                "pk": next(self._pk),
                "fields": {
                    "endpoint_slug": slugify(" ".join([cluster, framework, model.lower()])),
                    "cluster": cluster,
                    "framework": framework,
                    "model": model,
                    "endpoint_adapter": adapter,
                    "allowed_globus_groups": [],
                    "allowed_domains": allowed_domains or [],
                    "config": {"api_url": api_url, **config},
                },
            }
        )

    def write(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        clusters, endpoints = directory / "clusters.json", directory / "endpoints.json"
        clusters.write_bytes(orjson.dumps(self.clusters, option=orjson.OPT_INDENT_2))
        endpoints.write_bytes(orjson.dumps(self.endpoints, option=orjson.OPT_INDENT_2))
        return [clusters, endpoints]
