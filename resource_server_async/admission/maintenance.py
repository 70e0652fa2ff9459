"""Maintenance notices (MAINTENANCE_ERROR_NOTICES): the one rule for "is this cluster closed?"."""

from __future__ import annotations

from django.conf import settings

from resource_server_async.errors import GatewayError


def maintenance_notice(cluster_name: str) -> str | None:
    """The notice of a cluster under maintenance, or None when it is open.

    A cluster is under maintenance when it has an entry, whatever the entry says: an operator
    who lists a cluster means to close it, and sending its traffic on because the message was
    left empty would be the unsafe mistake. An empty (or blank) message gets a plain one.
    """
    notice = settings.MAINTENANCE_ERROR_NOTICES.get(cluster_name)
    if notice is None:
        return None
    return notice if notice.strip() else f"Cluster {cluster_name!r} is under maintenance."


def check_open(cluster_name: str) -> None:
    """503 with the notice when the cluster is under maintenance."""
    notice = maintenance_notice(cluster_name)
    if notice is not None:
        raise GatewayError(503, "cluster_maintenance", notice, info={"cluster": cluster_name})


def all_closed_error(cluster_names: list[str]) -> GatewayError:
    """503 for a model whose clusters are all under maintenance, their notices as the message."""
    notices = " ".join(maintenance_notice(name) or "" for name in cluster_names)
    return GatewayError(503, "cluster_maintenance", notices, info={"clusters": cluster_names})
