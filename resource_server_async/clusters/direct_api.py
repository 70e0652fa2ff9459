"""Cluster adapter for a set of directly reachable OpenAI-compatible servers."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from pydantic import Field, field_validator

from resource_server_async.catalog.adapter_config import AdapterConfig, check_http_url
from resource_server_async.clusters.base import BaseCluster, ClusterRow
from resource_server_async.clusters.jobs import ClusterJobs, status_page_jobs
from resource_server_async.clusters.status_page import StatusPage


class DirectAPIClusterConfig(AdapterConfig):
    status_url: str | None = Field(default=None, description="optional Metis-style status URL")
    api_request_timeout: float = Field(default=10.0, gt=0, description="seconds")

    @field_validator("status_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class DirectAPICluster(BaseCluster):
    """With a `status_url`, models must be "Live" there (as on Metis) and /jobs lists them from
    the same page; without one, requests go straight to the servers and /jobs answers 501."""

    # Typed as the base's: a subclass (Metis) declares a config whose keys are stricter.
    Config: ClassVar[type[AdapterConfig]] = DirectAPIClusterConfig

    def __init__(self, row: ClusterRow, config: AdapterConfig) -> None:
        super().__init__(row, config)
        assert isinstance(config, DirectAPIClusterConfig)
        self.status_page: StatusPage | None = None
        if config.status_url:
            self.status_page = StatusPage(
                row.name,
                config.status_url,
                config.api_request_timeout,
                settings.MODEL_STATUS_CACHE_SECONDS,
            )

    async def jobs(self) -> ClusterJobs:
        return await status_page_jobs(self, self.status_page)
