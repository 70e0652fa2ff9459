"""Row-level validation on every save, loaddata included (it bypasses Model.save and clean)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

from resource_server_async.catalog import version
from resource_server_async.catalog.validation import (
    FixtureRowError,
    validate_cluster,
    validate_endpoint,
)
from resource_server_async.models import (
    Allocation,
    ApiKey,
    Cluster,
    Endpoint,
    LimitOverride,
    MaintenanceWindow,
    Project,
)

# Tables the catalog snapshot is built from: a change to any bumps its version counter (an API
# key's row holds its default project).
CATALOG_MODELS = (Cluster, Endpoint, LimitOverride, Project, Allocation, ApiKey, MaintenanceWindow)


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


def _bump_catalog_version(sender: type, using: str = "default", **kwargs: Any) -> None:
    # In the transaction of the change (the admin's and loaddata's are atomic), so a worker
    # that reads the new number finds the new rows.
    version.bump(using)


for _model in CATALOG_MODELS:
    post_save.connect(_bump_catalog_version, sender=_model, dispatch_uid=f"bump-{_model.__name__}")
    post_delete.connect(
        _bump_catalog_version, sender=_model, dispatch_uid=f"bump-del-{_model.__name__}"
    )
m2m_changed.connect(
    _bump_catalog_version, sender=Project.api_keys.through, dispatch_uid="bump-project-keys"
)
