"""Cluster adapter for Metis, whose model states come from a JSON status URL."""

from __future__ import annotations

from django.conf import settings
from pydantic import Field, field_validator

from resource_server_async.adapter_config import AdapterConfig, check_http_url
from resource_server_async.clusters.base import BaseCluster, ClusterRow
from resource_server_async.clusters.status_page import StatusPage


class MetisClusterConfig(AdapterConfig):
    status_url: str = Field(description="URL of the JSON status document")
    api_request_timeout: float = Field(default=10.0, gt=0, description="seconds")

    @field_validator("status_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)


class MetisCluster(BaseCluster):
    Config = MetisClusterConfig

    def __init__(self, row: ClusterRow, config: AdapterConfig) -> None:
        super().__init__(row, config)
        assert isinstance(config, MetisClusterConfig)
        self.status_page: StatusPage | None = StatusPage(
            row.name,
            config.status_url,
            config.api_request_timeout,
            settings.MODEL_STATUS_CACHE_SECONDS,
        )
