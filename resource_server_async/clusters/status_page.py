"""A cluster's model status page (Metis `status_url`): fetched with a timeout, briefly reused by
the Live check of its endpoints and by its /jobs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from django.conf import settings

from resource_server_async import runtime
from resource_server_async.errors import GatewayError
from resource_server_async.refreshing_cache import RefreshingCache
from resource_server_async.upstream.clients import origin_of

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
    """One successful fetch of the page: its document and model index."""

    document: Any = None
    states: dict[str, str] = field(default_factory=dict)


# Failures are remembered this long (at most the cache time), so a dead page is not hammered.
_FAILURE_SECONDS = 2.0


class StatusPage:
    """One per cluster adapter: every endpoint's Live check and the cluster's /jobs share one
    fetch and one cache. After expiry the last reading keeps answering at once (up to
    `stale_seconds` old) while a single fetch replaces it, so a slow page never delays a
    request that a recent reading can answer."""

    def __init__(
        self,
        cluster: str,
        url: str,
        timeout: float,
        cache_seconds: float,
        stale_seconds: float | None = None,
    ) -> None:
        self.cluster = cluster
        self.url = url
        self.timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        if stale_seconds is None:
            stale_seconds = settings.MODEL_STATUS_STALE_SECONDS
        self._readings: RefreshingCache[str, _Reading] = RefreshingCache(
            cache_seconds,
            stale_seconds,
            max_entries=1,
            failure_ttl=min(cache_seconds, _FAILURE_SECONDS),
        )

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
        try:
            return await self._readings.get(self.url, self._fetch)
        except StatusPageUnavailable as failure:
            # A new exception per caller: a shared one would collect every caller's traceback.
            raise StatusPageUnavailable(
                failure.reason, http_status=failure.http_status, timed_out=failure.timed_out
            ) from None

    async def _fetch(self) -> _Reading:
        try:
            session = runtime.current.upstream.session(origin_of(self.url))
            async with session.get(self.url, timeout=self._client_timeout) as response:
                body = await response.read()
                if response.status != 200:
                    raise StatusPageUnavailable(
                        f"HTTP {response.status}", http_status=response.status
                    )
            document = orjson.loads(body)
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
            raise failure from None
        return _Reading(document, index_states(document))


def status_page_of(cluster: object) -> StatusPage | None:
    """The cluster adapter's status page, if its kind has one and it is configured."""
    page = getattr(cluster, "status_page", None)
    return page if isinstance(page, StatusPage) else None
