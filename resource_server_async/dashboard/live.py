"""The clusters page's live part: maintenance, endpoints and their states, jobs, read from the
gateway's in-process catalog and live states (the same ones the API answers from)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from resource_server_async import runtime
from resource_server_async.admission.maintenance import closure
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.clusters.base import BaseCluster
from resource_server_async.clusters.jobs import JobsReporter
from resource_server_async.clusters.live_state import LiveState, read_states
from resource_server_async.errors import GatewayError

logger = logging.getLogger(__name__)

# How long the page's refresh waits for a cluster's jobs or an endpoint's first state (s); a
# slower cluster shows "unknown" this time and its answer the next.
READ_TIMEOUT = 2.0


async def _jobs(cluster: BaseCluster) -> dict[str, Any]:
    if not isinstance(cluster, JobsReporter):
        return {"supported": False}
    try:
        jobs = await asyncio.wait_for(cluster.jobs(), READ_TIMEOUT)
    except (GatewayError, TimeoutError) as exc:
        return {"supported": True, "error": str(exc) or "no answer in time"}
    except Exception:  # a cluster's status function may fail in any way; the page goes on
        logger.exception("dashboard: jobs of %s", cluster.row.name)
        return {"supported": True, "error": "could not be read"}
    return {
        "supported": True,
        "counts": {name: len(items) for name, items in sorted(jobs.lists.items())},
        "status": {k: v for k, v in jobs.cluster_status.items() if _plain(v)},
    }


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


async def cluster_states() -> list[dict[str, Any]]:
    """Every cluster of the catalog with its maintenance, endpoints (state) and jobs."""
    snapshot = catalog.snapshot
    endpoints = list(snapshot.endpoints.values())
    clusters = list(snapshot.clusters.values())
    if runtime.current is runtime.NOT_STARTED:
        # Django served without the API (e.g. `manage.py runserver`): no live states here.
        states: dict[str, LiveState] = {}
        jobs = [{"supported": True, "error": "the API is not running in this process"}] * len(
            clusters
        )
    else:
        states = await read_states(endpoints, READ_TIMEOUT)
        jobs = list(await asyncio.gather(*(_jobs(c) for c in clusters)))
    answer = []
    for cluster, cluster_jobs in zip(clusters, jobs, strict=True):
        closed = closure(cluster.name)
        rows = []
        for endpoint in endpoints:
            if endpoint.row.cluster != cluster.name:
                continue
            shut = closure(cluster.name, endpoint)
            state = states.get(endpoint.slug, LiveState.UNKNOWN).label
            rows.append(
                {
                    "slug": endpoint.slug,
                    "framework": endpoint.row.framework,
                    "model": endpoint.row.model,
                    "state": "maintenance" if shut is not None else state,
                    "maintenance": shut.notice if shut is not None else "",
                }
            )
        answer.append(
            {
                "name": cluster.name,
                "maintenance": closed.notice if closed is not None else "",
                "endpoints": rows,
                "jobs": cluster_jobs,
            }
        )
    return answer
