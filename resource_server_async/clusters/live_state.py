"""Each endpoint's live state (ready, starting, queued, ...), read in the background and answered
from memory: what federated routing ranks candidates by, and what the model list shows.

The state of an endpoint comes from its adapters' own cached status: the Globus Compute
endpoint's status and the cluster's jobs (`/jobs`, clusters/jobs.py), the cluster's status page
(Metis, clusters/status_page.py), or, for a direct server without a status page, a probe of its
`GET /v1/models` (CONTRACT.md §1). `current_state` is a dict read that at most starts a
background read; nothing on the request path waits for a status once it has been read once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from enum import IntEnum
from functools import partial
from typing import Any

import aiohttp
from django.conf import settings

from resource_server_async import runtime
from resource_server_async.clusters.jobs import ClusterJobs, JobsReporter
from resource_server_async.clusters.status_page import LIVE, status_page_of
from resource_server_async.endpoints.base import BaseEndpoint
from resource_server_async.endpoints.direct_api import DirectAPIEndpoint
from resource_server_async.endpoints.globus_compute import GlobusComputeEndpoint
from resource_server_async.errors import GatewayError
from resource_server_async.refreshing_cache import RefreshingCache

logger = logging.getLogger(__name__)


class LiveState(IntEnum):
    """Best last: a federated request goes to the highest state first."""

    OFFLINE = 0  # known not to answer (Compute endpoint offline, server down, model stopped)
    UNKNOWN = 1  # not read yet, or its status cannot be read
    REACHABLE = 2  # answers, but the model is not known to run
    FREE_NODES = 3  # no job for the model, and the cluster has free nodes to start one
    QUEUED = 4  # its job waits in the scheduler's queue
    STARTING = 5  # its job runs, the model is loading
    READY = 6  # the model runs and answers

    @property
    def label(self) -> str:
        """The state's name as the API shows it: "ready", "free_nodes", ..."""
        return self.name.lower()


class LiveStates:
    """The states of the endpoints asked about, each re-read in the background at most once per
    LIVE_STATE_SECONDS; a state older than ten times that is not trusted (UNKNOWN)."""

    def __init__(self, seconds: float, probe_timeout: float) -> None:
        self._probe_timeout = probe_timeout
        self._states: RefreshingCache[str, LiveState] = RefreshingCache(
            seconds, 10 * seconds, failure_ttl=seconds
        )

    def current(self, endpoint: BaseEndpoint) -> LiveState:
        state = self.peek(endpoint)
        return LiveState.UNKNOWN if state is None else state

    def peek(self, endpoint: BaseEndpoint) -> LiveState | None:
        """The state, or None when never read (or too long ago); may start a background read."""
        return self._states.peek_refreshing(endpoint.slug, lambda: read_state(endpoint, self))

    async def read(self, endpoints: Iterable[BaseEndpoint], timeout: float) -> dict[str, LiveState]:
        """States by slug, waiting up to `timeout` seconds for those never read (UNKNOWN after)."""
        endpoints = list(endpoints)
        missing = [e for e in endpoints if self.peek(e) is None]
        if missing:
            loads = [self._states.get(e.slug, partial(read_state, e, self)) for e in missing]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*loads, return_exceptions=True)
        return {e.slug: self.current(e) for e in endpoints}

    def clear(self) -> None:
        self._states.clear()

    @property
    def probe_timeout(self) -> float:
        return self._probe_timeout


def current_state(endpoint: BaseEndpoint) -> LiveState:
    """The endpoint's last known state (UNKNOWN before the first read), at once."""
    return runtime.current.live_states.current(endpoint)


async def read_states(
    endpoints: Iterable[BaseEndpoint], timeout: float | None = None
) -> dict[str, LiveState]:
    """The endpoints' states by slug; waits (up to `timeout`, default LIVE_STATE_FIRST_WAIT)
    only for endpoints whose state was never read."""
    wait = settings.LIVE_STATE_FIRST_WAIT if timeout is None else timeout
    return await runtime.current.live_states.read(endpoints, wait)


async def read_state(endpoint: BaseEndpoint, states: LiveStates) -> LiveState:
    """Read one endpoint's state now from its adapters (the background load)."""
    try:
        if isinstance(endpoint, GlobusComputeEndpoint):
            return await _compute_state(endpoint)
        if isinstance(endpoint, DirectAPIEndpoint):
            page = status_page_of(endpoint.cluster)
            if page is not None:
                return _page_state(await page.state_of(endpoint.model))
            return await _probe_state(endpoint, states.probe_timeout)
    except GatewayError as exc:
        logger.info("live state of %s: %s", endpoint.slug, exc.message)
        return LiveState.OFFLINE if exc.code == "endpoint_key_missing" else LiveState.UNKNOWN
    except Exception as exc:  # a status source's failure is a state, never a request's error
        logger.warning("live state of %s cannot be read: %s", endpoint.slug, exc)
    return LiveState.UNKNOWN


async def _probe_state(endpoint: DirectAPIEndpoint, timeout: float) -> LiveState:
    try:
        listed = await endpoint.lists_model(timeout)
    except (aiohttp.ClientError, TimeoutError, OSError):
        return LiveState.OFFLINE
    return LiveState.READY if listed else LiveState.REACHABLE


def _page_state(state: str | None) -> LiveState:
    """A status page's word for the model (Metis: "Live", "Stopped", ...) as a state."""
    if state is None:
        return LiveState.OFFLINE  # not listed: the Live check refuses it
    word = state.strip().lower()
    if word == LIVE:
        return LiveState.READY
    if word == "stopped":
        return LiveState.OFFLINE
    if "start" in word or "load" in word:
        return LiveState.STARTING
    if "queue" in word or "pend" in word:
        return LiveState.QUEUED
    return LiveState.REACHABLE


async def _compute_state(endpoint: GlobusComputeEndpoint) -> LiveState:
    status = await runtime.current.executor.endpoint_state(endpoint.compute.endpoint_uuid)
    if status.status == "offline":
        return LiveState.OFFLINE
    if status.status != "online":
        return LiveState.UNKNOWN
    job = await _job_state(endpoint)
    if status.workers != 0:
        # Workers take tasks; a job that still loads its model is "starting" all the same.
        return LiveState.STARTING if job == LiveState.STARTING else LiveState.READY
    # No worker yet: a task would wait for a block (check_ready answers model_starting).
    return job if job is not None and job < LiveState.READY else LiveState.REACHABLE


async def _job_state(endpoint: BaseEndpoint) -> LiveState | None:
    """Where the cluster's jobs put the endpoint's model, or None when they do not say."""
    cluster = endpoint.cluster
    if not isinstance(cluster, JobsReporter):
        return None
    try:
        jobs = await cluster.jobs()
    except GatewayError:
        return None
    return job_state(jobs, endpoint.model, endpoint.row.framework)


def job_state(jobs: ClusterJobs, model: str, framework: str) -> LiveState | None:
    """The model's state by the cluster's job lists: running (and its Model Status), queued, or
    the cluster's free nodes."""
    wanted = model.lower()

    def runs(job: dict[str, Any]) -> bool:
        names = {name.strip().lower() for name in str(job.get("Models", "")).split(",")}
        job_framework = str(job.get("Framework", "")).lower()
        return wanted in names and job_framework in (framework.lower(), "n/a", "")

    running = [job for job in jobs.lists.get("running", []) if runs(job)]
    if running:
        ready = any(str(job.get("Model Status", "")).lower() == "running" for job in running)
        return LiveState.READY if ready else LiveState.STARTING
    if any(runs(job) for job in jobs.lists.get("queued", [])):
        return LiveState.QUEUED
    free = jobs.cluster_status.get("free_nodes")
    if isinstance(free, int) and free > 0:
        return LiveState.FREE_NODES
    return None
