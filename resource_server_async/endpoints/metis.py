"""Endpoint adapter for Metis: a direct API whose model must be "Live" in the cluster status."""

from __future__ import annotations

from resource_server_async.endpoints.direct_api import DirectAPIEndpoint


class MetisEndpoint(DirectAPIEndpoint):
    """Calls like DirectAPIEndpoint, and only while the cluster's status page lists the model
    as "Live" (else 503 with the status seen)."""

    requires_status_page = True
