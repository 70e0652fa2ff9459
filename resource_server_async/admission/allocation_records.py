"""What an allocation spent according to the request records (blocking: a thread calls it)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Sum

from resource_server_async.admission.allocation_ledger import Spent
from resource_server_async.catalog.projects import AllocationRule


def spent_in_records(rule: AllocationRule, since: datetime, until: datetime) -> Spent:
    """Tokens and GPU-seconds of the rule's project (and model, cluster) received in
    [since, until); one aggregate over the (project, received_at) index."""
    from resource_server_async.models import RequestRecord

    records = RequestRecord.objects.filter(
        project=rule.project, received_at__gte=since, received_at__lt=until
    )
    if rule.model:
        records = records.filter(model=rule.model)
    if rule.cluster:
        records = records.filter(cluster=rule.cluster)
    sums = records.aggregate(t=Sum("total_tokens"), g=Sum("response_time"))
    return Spent(int(sums["t"] or 0), float(sums["g"] or 0.0))
