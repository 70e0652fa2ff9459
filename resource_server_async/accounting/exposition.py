"""Who may read the metrics (token, networks), and the metrics in Prometheus text format."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from resource_server_async.accounting import metrics_files
from resource_server_async.errors import GatewayError

MEDIA_TYPE = CONTENT_TYPE_LATEST


def check_access(client_host: str | None, authorization: str | None) -> None:
    """Raise the refusal for this scraper, if any: 404 when metrics are off or (outside
    development mode) neither a token nor networks are set, 403 from an address outside
    METRICS_ALLOWED_NETWORKS, 401 without METRICS_TOKEN."""
    token: str = settings.METRICS_TOKEN
    networks = settings.METRICS_ALLOWED_NETWORKS
    if not settings.METRICS_ENABLED:
        raise GatewayError(404, "metrics_disabled", "Metrics are off (METRICS_ENABLED=false).")
    if not token and not networks and not settings.DEV_MODE:
        # Closed rather than open to anyone: the series name clusters and models.
        raise GatewayError(
            404,
            "metrics_not_configured",
            "Metrics are closed: set METRICS_TOKEN and/or METRICS_ALLOWED_NETWORKS.",
        )
    if networks and not _address_in(client_host, networks):
        raise GatewayError(403, "metrics_forbidden", "This address may not read the metrics.")
    if token:
        scheme, _, given = (authorization or "").partition(" ")
        # compare_digest: the time taken does not tell how much of a guess was right.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise GatewayError(
                401,
                "invalid_metrics_token",
                "GET /metrics needs 'Authorization: Bearer <METRICS_TOKEN>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )


Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def _address_in(host: str | None, networks: Networks) -> bool:
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:  # a Unix socket, or no address at all
        return False
    return any(address in network for network in networks)


def render() -> bytes:
    """Every series, summed over the server's worker processes (blocking: file reads)."""
    directory = metrics_files.current_directory()
    if directory is None:
        return generate_latest(REGISTRY)
    metrics_files.forget_dead_workers(directory)
    # A registry per scrape, as the library asks: the collector reads the files when asked.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))
    return generate_latest(registry)
