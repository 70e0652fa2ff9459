"""Cluster adapter for HPC clusters whose job state is read by a Globus Compute function."""

from __future__ import annotations

from pydantic import Field

from resource_server_async.adapter_config import AdapterConfig
from resource_server_async.clusters.base import BaseCluster


class GlobusComputeClusterConfig(AdapterConfig):
    qstat_endpoint_uuid: str = Field(min_length=1, description="endpoint on the login node")
    qstat_function_uuid: str = Field(min_length=1, description="registered status function")


class GlobusComputeCluster(BaseCluster):
    Config = GlobusComputeClusterConfig
