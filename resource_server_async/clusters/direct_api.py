"""Cluster adapter for a set of directly reachable OpenAI-compatible servers."""

from __future__ import annotations

from pydantic import Field, field_validator

from resource_server_async.adapter_config import AdapterConfig, check_http_url
from resource_server_async.clusters.base import BaseCluster


class DirectAPIClusterConfig(AdapterConfig):
    status_url: str | None = Field(default=None, description="optional Metis-style status URL")
    api_request_timeout: float = Field(default=10.0, gt=0, description="seconds")

    @field_validator("status_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class DirectAPICluster(BaseCluster):
    Config = DirectAPIClusterConfig
