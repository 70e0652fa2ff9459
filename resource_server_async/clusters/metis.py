"""Cluster adapter for Metis, whose model states come from a JSON status URL."""

from __future__ import annotations

from pydantic import Field

from resource_server_async.clusters.direct_api import DirectAPICluster, DirectAPIClusterConfig


class MetisClusterConfig(DirectAPIClusterConfig):
    # Required here: a Metis model is served only while its status page says "Live".
    status_url: str = Field(description="URL of the JSON status document")


class MetisCluster(DirectAPICluster):
    """A DirectAPI cluster that always has a status page: the Live check of its endpoints and
    its /jobs (issue 6) read that page, through one fetch and one cache."""

    Config = MetisClusterConfig
