"""Cluster adapter for HPC clusters whose job state is read by a Globus Compute function."""

from __future__ import annotations

from django.conf import settings
from pydantic import Field

from resource_server_async.adapter_config import AdapterConfig
from resource_server_async.clusters.base import BaseCluster, ClusterRow
from resource_server_async.clusters.jobs import ClusterJobs, jobs_from_report, status_function_error
from resource_server_async.compute import function_problems, get_executor
from resource_server_async.compute.base import ComputeError, EndpointUnavailable
from resource_server_async.errors import GatewayError
from resource_server_async.refreshing_cache import RefreshingCache


class GlobusComputeClusterConfig(AdapterConfig):
    qstat_endpoint_uuid: str = Field(min_length=1, description="endpoint on the login node")
    qstat_function_uuid: str = Field(min_length=1, description="registered status function")


class GlobusComputeCluster(BaseCluster):
    """Its jobs come from the status function (CONTRACT.md §4) run on the login node's endpoint,
    at most once per JOBS_CACHE_SECONDS for everyone; a stale list is answered while a newer one
    is read."""

    Config = GlobusComputeClusterConfig

    def __init__(self, row: ClusterRow, config: AdapterConfig) -> None:
        super().__init__(row, config)
        assert isinstance(config, GlobusComputeClusterConfig)
        self.status = config
        self._jobs: RefreshingCache[str, ClusterJobs] = RefreshingCache(
            settings.JOBS_CACHE_SECONDS, 5 * settings.JOBS_CACHE_SECONDS, max_entries=1
        )

    @classmethod
    def environment_problems(cls, config: AdapterConfig) -> list[str]:
        assert isinstance(config, GlobusComputeClusterConfig)
        return function_problems(config.qstat_function_uuid)

    async def jobs(self) -> ClusterJobs:
        return await self._jobs.get(self.name, self._read_jobs)

    async def _read_jobs(self) -> ClusterJobs:
        executor = get_executor()
        try:
            state = await executor.endpoint_state(self.status.qstat_endpoint_uuid)
            if state.status == "offline":
                raise EndpointUnavailable("its Globus Compute endpoint is offline")
            report = await executor.run(
                self.status.qstat_endpoint_uuid,
                self.status.qstat_function_uuid,
                (),
                timeout=settings.JOBS_FUNCTION_TIMEOUT,
            )
        except ComputeError as exc:
            raise status_function_error(exc, self.name) from None
        try:
            return jobs_from_report(report, self.name)
        except ValueError as exc:
            raise GatewayError(
                502,
                "jobs_function_failed",
                f"The job status of cluster {self.name!r} could not be read: {exc}",
                info={"cluster": self.name},
            ) from None
