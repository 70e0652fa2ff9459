"""Cluster adapter for Metis, whose model states come from a JSON status URL."""

from __future__ import annotations

from django.conf import settings
from pydantic import Field, field_validator

from resource_server_async.adapter_config import AdapterConfig, check_http_url
from resource_server_async.clusters.base import BaseCluster, ClusterRow
from resource_server_async.clusters.jobs import (
    ClusterJobs,
    jobs_from_status_page,
    read_status_page,
)
from resource_server_async.clusters.status_page import StatusPage
from resource_server_async.errors import GatewayError
from resource_server_async.refreshing_cache import RefreshingCache


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
        # /jobs (issue 6): the whole status document, cached for everyone like any cluster's jobs.
        self._jobs: RefreshingCache[str, ClusterJobs] = RefreshingCache(
            settings.JOBS_CACHE_SECONDS, 5 * settings.JOBS_CACHE_SECONDS, max_entries=1
        )

    async def jobs(self) -> ClusterJobs:
        return await self._jobs.get(self.name, self._read_jobs)

    async def _read_jobs(self) -> ClusterJobs:
        assert isinstance(self.config, MetisClusterConfig)
        document = await read_status_page(
            self.name, self.config.status_url, self.config.api_request_timeout
        )
        framework = self.row.frameworks[0] if self.row.frameworks else "api"
        try:
            return jobs_from_status_page(document, self.name, framework)
        except ValueError as exc:
            raise GatewayError(
                502,
                "jobs_failed",
                f"The status page of cluster {self.name!r} could not be read: {exc}",
                info={"cluster": self.name},
            ) from None
