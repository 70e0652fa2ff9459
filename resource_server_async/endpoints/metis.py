"""Endpoint adapter for Metis: a direct API whose model must be "Live" in the cluster status."""

from __future__ import annotations

from resource_server_async.endpoints.direct_api import DirectAPIEndpoint


class MetisEndpoint(DirectAPIEndpoint):
    pass
