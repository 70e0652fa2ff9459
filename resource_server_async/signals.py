"""Row-level validation on every save, loaddata included (it bypasses Model.save and clean)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import pre_save
from django.dispatch import receiver
from django.utils import timezone

from resource_server_async.catalog.validation import (
    FixtureRowError,
    validate_cluster,
    validate_endpoint,
)
from resource_server_async.models import Cluster, Endpoint


@receiver(pre_save, sender=Cluster)
def _check_cluster(sender: type[Cluster], instance: Cluster, **kwargs: Any) -> None:
    errors = [
        str(p)
        for p in validate_cluster(instance.as_fields(), f"cluster {instance.cluster_name!r}")
        if p.level == "error"
    ]
    if errors:
        raise FixtureRowError("; ".join(errors))
    instance.updated_at = timezone.now()


@receiver(pre_save, sender=Endpoint)
def _check_endpoint(sender: type[Endpoint], instance: Endpoint, **kwargs: Any) -> None:
    where = f"endpoint {instance.endpoint_slug!r}"
    errors = [str(p) for p in validate_endpoint(instance.as_fields(), where) if p.level == "error"]
    if errors:
        raise FixtureRowError("; ".join(errors))
    instance.updated_at = timezone.now()
