"""A cluster's jobs for /resource_server/{cluster}/jobs (CONTRACT.md §4): read and shape them.

A cluster adapter that reports jobs has `async jobs() -> ClusterJobs`, cached per cluster (the
whole list; what each caller may see is decided above, in inference/visibility.py): Globus
Compute clusters run their status function (or, without a scheduler, list their endpoints by the
state of their Compute endpoints), clusters with a status page read it (status_page.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

from resource_server_async.clusters.base import BaseCluster
from resource_server_async.clusters.status_page import LIVE, StatusPage, StatusPageUnavailable
from resource_server_async.compute.base import (
    ComputeError,
    ComputeNotConfigured,
    ComputeTimeout,
    EndpointState,
    EndpointUnavailable,
    RemoteFunctionError,
)
from resource_server_async.endpoints.base import EndpointRow
from resource_server_async.errors import GatewayError

# The lists of the /jobs answer, in order (the status function's keys with `_` for `-`).
JOB_LISTS = (
    "running",
    "queued",
    "stopped",
    "others",
    "private_batch_running",
    "private_batch_queued",
)
NOT_AVAILABLE = "N/A"
# What a running job's "Model Status" becomes when its Compute endpoint has no workers: the
# model server may be up, but no request can reach it.
NOT_READY = "disconnected"


@dataclass(frozen=True, slots=True)
class ClusterJobs:
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cluster_status: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class JobsReporter(Protocol):
    async def jobs(self) -> ClusterJobs: ...


def jobs_not_supported(cluster: BaseCluster) -> GatewayError:
    """501 for a cluster that cannot report jobs (its kind never does, or it is not set up to)."""
    return GatewayError(
        501,
        "jobs_not_supported",
        f"Cluster {cluster.name!r} does not report jobs (its adapter is {type(cluster).__name__}).",
        info={"cluster": cluster.name},
    )


def _job(item: dict[str, Any], cluster: str) -> dict[str, Any]:
    job = dict(item)
    for key in ("Models", "Framework"):
        value = job.get(key)
        job[key] = value.strip() if isinstance(value, str) and value.strip() else NOT_AVAILABLE
    value = job.get("Cluster")
    job["Cluster"] = value.strip() if isinstance(value, str) and value.strip() else cluster
    return job


def jobs_from_report(report: Any, cluster: str) -> ClusterJobs:
    """ClusterJobs from a status function's answer (JSON text or object). Items that are not
    job objects are left out; a missing list is empty."""
    if isinstance(report, bytes | str):
        report = orjson.loads(report)
    if not isinstance(report, dict):
        raise ValueError(f"the status function returned {type(report).__name__}, not an object")
    lists: dict[str, list[dict[str, Any]]] = {}
    for name in JOB_LISTS:
        items = report.get(name, report.get(name.replace("_", "-"), []))
        items = items if isinstance(items, list) else []
        lists[name] = [_job(item, cluster) for item in items if isinstance(item, dict)]
    status = report.get("cluster_status")
    return ClusterJobs(lists, dict(status) if isinstance(status, dict) else {})


def status_function_error(exc: ComputeError, cluster: str) -> GatewayError:
    """The caller's error when a cluster's status function cannot give its jobs."""
    info = {"cluster": cluster, **({"task_id": exc.task_id} if exc.task_id else {})}
    if isinstance(exc, ComputeTimeout):
        return GatewayError(
            504,
            "jobs_timeout",
            f"The job status of cluster {cluster!r} did not come back in time ({exc}).",
            info=info,
        )
    if isinstance(exc, EndpointUnavailable | ComputeNotConfigured):
        return GatewayError(
            503,
            "jobs_unavailable",
            f"The job status of cluster {cluster!r} cannot be read now: {exc}.",
            info=info,
        )
    reason = " ".join(str(exc).split())[:500]
    code = "jobs_function_failed" if isinstance(exc, RemoteFunctionError) else "jobs_failed"
    return GatewayError(
        502, code, f"The job status of cluster {cluster!r} could not be read: {reason}", info=info
    )


# Where each Compute endpoint state puts its model, on a cluster without a scheduler.
_STATE_LISTS = {"online": ("running", "running"), "offline": ("stopped", "stopped")}
_NO_SCHEDULER_FIELDS = (
    "Job ID",
    "Job State",
    "Host Name",
    "Job Comments",
    "Nodes Reserved",
    "Walltime",
    "Estimated Start Time",
)


def jobs_from_endpoint_states(
    endpoints: Iterable[tuple[EndpointRow, EndpointState]], cluster: str
) -> ClusterJobs:
    """The jobs of a cluster without a scheduler: each endpoint's model, running while its
    Compute endpoint is online (the model server runs beside it), stopped while it is offline,
    under "others" while its state is unknown. No scheduler job stands behind them."""
    lists: dict[str, list[dict[str, Any]]] = {name: [] for name in JOB_LISTS}
    for row, state in endpoints:
        name, model_status = _STATE_LISTS.get(state.status, ("others", state.status))
        job: dict[str, Any] = {
            "Models": row.model,
            "Framework": row.framework,
            "Cluster": cluster,
            "Model Status": model_status,
            "Description": state.detail or "no scheduler",
            "Model Version": "",
        }
        job.update(dict.fromkeys(_NO_SCHEDULER_FIELDS, NOT_AVAILABLE))
        lists[name].append(job)
    summary = {
        "cluster": cluster,
        "total_models": sum(len(jobs) for jobs in lists.values()),
        "live_models": len(lists["running"]),
        "stopped_models": len(lists["stopped"]),
    }
    return ClusterJobs(lists, summary)


# --- clusters with a status page (Metis, DirectAPI with status_url) ---------------------------

STOPPED = "stopped"


def _text(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


def _served_names(model: str, entry: dict[str, Any]) -> str:
    # The Live check counts an entry's `experts` as models it serves: so do its jobs.
    experts = entry.get("experts")
    names = (
        [model, *(e for e in experts if isinstance(e, str))]
        if isinstance(experts, list)
        else [model]
    )
    return ",".join(dict.fromkeys(name.strip() for name in names if name.strip()))


def jobs_from_status_page(document: Any, cluster: str, framework: str) -> ClusterJobs:
    """Metis's `{key: {"status", "model", "description", "experts", ...}}` as jobs: "Live"
    models are running, "Stopped" ones stopped, any other state queued (as the deployed gateway
    does)."""
    if not isinstance(document, dict):
        raise ValueError(f"the status page is {type(document).__name__}, not an object")
    lists: dict[str, list[dict[str, Any]]] = {name: [] for name in JOB_LISTS}
    live = stopped = 0
    for key, entry in document.items():
        if not isinstance(entry, dict):
            continue
        model = _text(entry.get("model"), str(key))
        state = _text(entry.get("status"), "unknown").lower()
        description = _text(entry.get("description"), "")
        job = {
            "Models": _served_names(model, entry),
            "Framework": framework,
            "Cluster": cluster,
            "Model Status": "running" if state == LIVE else state,
            "Description": f"{model} - {description}" if description else model,
            "Model Version": entry.get("model_version", ""),
        }
        if state == LIVE:
            lists["running"].append(job)
            live += 1
        elif state == STOPPED:
            lists["stopped"].append(job)
            stopped += 1
        else:
            lists["queued"].append(job)
    status = {
        "cluster": cluster,
        "total_models": len(document),
        "live_models": live,
        "stopped_models": stopped,
    }
    return ClusterJobs(lists, status)


async def status_page_jobs(cluster: BaseCluster, page: StatusPage | None) -> ClusterJobs:
    """The jobs of a cluster whose models are listed on a status page (Metis, or DirectAPI with
    a `status_url`), from the same fetch and cache as its endpoints' Live check; 501 without a
    page, 502/504 naming the cluster when the page cannot be read."""
    if page is None:
        raise jobs_not_supported(cluster)
    name = cluster.name
    try:
        document = await page.document()
    except StatusPageUnavailable as exc:
        if exc.timed_out:
            raise GatewayError(
                504,
                "jobs_timeout",
                f"The status page of cluster {name!r} did not answer within {page.timeout:g} s.",
                info={"cluster": name},
            ) from None
        reason = f"it answered HTTP {exc.http_status}" if exc.http_status else exc.reason
        raise GatewayError(
            502,
            "jobs_failed",
            f"The status page of cluster {name!r} could not be read: {reason}",
            info={"cluster": name},
        ) from None
    # Status pages do not name a framework; the cluster's first one is where its models live.
    framework = cluster.row.frameworks[0] if cluster.row.frameworks else "api"
    try:
        return jobs_from_status_page(document, name, framework)
    except ValueError as exc:
        raise GatewayError(
            502,
            "jobs_failed",
            f"The status page of cluster {name!r} could not be read: {exc}",
            info={"cluster": name},
        ) from None
