"""A cluster's model status page (Metis `status_url`): fetched with a timeout, briefly reused by
the Live check of its endpoints and by its /jobs."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from resource_server_async.errors import GatewayError
from resource_server_async.upstream import clients, origin_of

logger = logging.getLogger(__name__)

LIVE = "live"


def index_states(document: Any) -> dict[str, str]:
    """{model name (lower case): status} from `{key: {"status", "model", "description"}}`.

    Besides `model`, an entry may list the names it serves in `experts` (Metis does); the key
    itself counts as a name too. When several entries name a model, a live one wins.
    """
    states: dict[str, str] = {}
    if not isinstance(document, dict):
        return states
    for key, entry in document.items():
        if not isinstance(entry, dict):
            continue
        state = entry.get("status")
        state = state if isinstance(state, str) else "unknown"
        names = [str(key)]
        if isinstance(entry.get("model"), str):
            names.append(entry["model"])
        experts = entry.get("experts")
        if isinstance(experts, list):
            names.extend(name for name in experts if isinstance(name, str))
        for name in names:
            name = name.strip().lower()
            if name and states.get(name, "").lower() != LIVE:
                states[name] = state
    return states


class StatusPageUnavailable(Exception):
    """The status page could not be read. Each reader words this for its caller: the Live check
    as a 503, /jobs as a 502 or 504."""

    def __init__(self, reason: str, *, http_status: int | None = None, timed_out: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status
        self.timed_out = timed_out


@dataclass(frozen=True, slots=True)
class _Reading:
    """One fetch of the page: its document and model index, or why it failed."""

    document: Any = None
    states: dict[str, str] = field(default_factory=dict)
    failure: StatusPageUnavailable | None = None


class StatusPage:
    """One per cluster adapter: every endpoint's Live check and the cluster's /jobs share one
    fetch and one cache. Concurrent requests after expiry wait for a single fetch instead of
    each fetching."""

    def __init__(self, cluster: str, url: str, timeout: float, cache_seconds: float) -> None:
        self.cluster = cluster
        self.url = url
        self.timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._cache_seconds = cache_seconds
        self._reading: _Reading | None = None
        self._expires = 0.0
        self._fetch_task: asyncio.Task[None] | None = None

    async def document(self) -> Any:
        """The page's parsed JSON as last fetched (shared: do not change it); raises
        StatusPageUnavailable when the page cannot be read."""
        return (await self._read()).document

    async def state_of(self, model: str) -> str | None:
        """The model's status as the page reports it, or None if the page does not list it."""
        try:
            reading = await self._read()
        except StatusPageUnavailable as exc:
            raise GatewayError(
                503,
                "cluster_status_unavailable",
                f"The status of cluster {self.cluster!r} cannot be read ({exc.reason}), so the "
                "gateway cannot tell whether the model is running. Try again later.",
                info={"cluster": self.cluster},
            ) from None
        return reading.states.get(model.lower())

    async def _read(self) -> _Reading:
        if time.monotonic() >= self._expires:
            await self._refresh()
        reading = self._reading
        assert reading is not None
        if reading.failure is not None:
            failure = reading.failure
            # A new exception per caller: a shared one would collect every caller's traceback.
            raise StatusPageUnavailable(
                failure.reason, http_status=failure.http_status, timed_out=failure.timed_out
            )
        return reading

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        task = self._fetch_task
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._fetch())
            self._fetch_task = task
        # shield: one caller giving up must not cancel the fetch the others wait for.
        await asyncio.shield(task)

    async def _fetch(self) -> None:
        try:
            session = clients.session(origin_of(self.url))
            async with session.get(self.url, timeout=self._client_timeout) as response:
                body = await response.read()
                if response.status != 200:
                    raise StatusPageUnavailable(
                        f"HTTP {response.status}", http_status=response.status
                    )
            document = orjson.loads(body)
            self._reading = _Reading(document, index_states(document))
            self._expires = time.monotonic() + self._cache_seconds
        except (StatusPageUnavailable, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if isinstance(exc, StatusPageUnavailable):
                failure = exc
            elif isinstance(exc, TimeoutError):
                failure = StatusPageUnavailable("timed out", timed_out=True)
            else:
                failure = StatusPageUnavailable(str(exc) or type(exc).__name__)
            logger.warning(
                "status page of cluster %s (%s): %s", self.cluster, self.url, failure.reason
            )
            self._reading = _Reading(failure=failure)
            # Failures are remembered briefly too, so a dead status page is not hammered.
            self._expires = time.monotonic() + min(self._cache_seconds, 2.0)


def status_page_of(cluster: object) -> StatusPage | None:
    """The cluster adapter's status page, if its kind has one and it is configured."""
    page = getattr(cluster, "status_page", None)
    return page if isinstance(page, StatusPage) else None
