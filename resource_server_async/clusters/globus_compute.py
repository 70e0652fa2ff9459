"""Cluster adapter for HPC clusters whose job state is read by a Globus Compute function."""

from __future__ import annotations

import asyncio
from typing import Literal

from django.conf import settings
from pydantic import Field, model_validator

from resource_server_async import runtime
from resource_server_async.catalog.adapter_config import AdapterConfig
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.clusters.base import BaseCluster, ClusterRow
from resource_server_async.clusters.jobs import (
    ClusterJobs,
    jobs_from_endpoint_states,
    jobs_from_report,
    status_function_error,
)
from resource_server_async.compute import function_problems
from resource_server_async.compute.base import ComputeError, EndpointUnavailable
from resource_server_async.errors import GatewayError
from resource_server_async.refreshing_cache import RefreshingCache


class GlobusComputeClusterConfig(AdapterConfig):
    # "status_function": the scheduler's jobs, read by the status function (qstat/squeue).
    # "endpoints": there is no scheduler (the model servers run on the Compute endpoint's own
    # host, as under COMPUTE_EXECUTOR=local): each endpoint's model runs while its Compute
    # endpoint is online.
    jobs_from: Literal["status_function", "endpoints"] = Field(
        default="status_function", description="where /jobs comes from"
    )
    qstat_endpoint_uuid: str | None = Field(
        default=None, min_length=1, description="endpoint on the login node"
    )
    qstat_function_uuid: str | None = Field(
        default=None, min_length=1, description="registered status function"
    )

    @model_validator(mode="after")
    def _status_function_named(self) -> GlobusComputeClusterConfig:
        if self.jobs_from == "status_function" and not (
            self.qstat_endpoint_uuid and self.qstat_function_uuid
        ):
            raise ValueError(
                "qstat_endpoint_uuid and qstat_function_uuid are required, unless the cluster "
                'has no scheduler ("jobs_from": "endpoints")'
            )
        return self


class GlobusComputeCluster(BaseCluster):
    """Its jobs come from the status function (CONTRACT.md §4) run on the login node's endpoint,
    or, on a cluster without a scheduler, from its endpoints' states; at most once per
    JOBS_CACHE_SECONDS for everyone; a stale list is answered while a newer one is read."""

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
        if config.qstat_function_uuid is None:
            return []
        return function_problems(config.qstat_function_uuid)

    async def jobs(self) -> ClusterJobs:
        if self.status.jobs_from == "endpoints":
            return await self._jobs.get(self.name, self._read_endpoint_states)
        return await self._jobs.get(self.name, self._read_jobs)

    async def _read_endpoint_states(self) -> ClusterJobs:
        from resource_server_async.endpoints.globus_compute import GlobusComputeEndpoint

        executor = runtime.current.executor
        endpoints = [
            endpoint
            for endpoint in catalog.snapshot.endpoints.values()
            if endpoint.row.cluster == self.name and isinstance(endpoint, GlobusComputeEndpoint)
        ]
        states = await asyncio.gather(
            *(executor.endpoint_state(endpoint.compute.endpoint_uuid) for endpoint in endpoints)
        )
        return jobs_from_endpoint_states(
            [(endpoint.row, state) for endpoint, state in zip(endpoints, states, strict=True)],
            self.name,
        )

    async def _read_jobs(self) -> ClusterJobs:
        assert self.status.qstat_endpoint_uuid and self.status.qstat_function_uuid
        executor = runtime.current.executor
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
