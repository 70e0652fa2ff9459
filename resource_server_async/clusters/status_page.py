"""A cluster's model status page (Metis `status_url`): fetched with a timeout, briefly reused."""

from __future__ import annotations

import asyncio
import logging
import time
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


class StatusPage:
    """One per cluster adapter, so every endpoint of the cluster shares one fetch and one cache.

    Concurrent requests after expiry wait for a single fetch instead of each fetching.
    """

    def __init__(self, cluster: str, url: str, timeout: float, cache_seconds: float) -> None:
        self.cluster = cluster
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._cache_seconds = cache_seconds
        self._states: dict[str, str] | None = None
        self._error: GatewayError | None = None
        self._expires = 0.0
        self._fetch_task: asyncio.Task[None] | None = None

    async def state_of(self, model: str) -> str | None:
        """The model's status as the page reports it, or None if the page does not list it."""
        if time.monotonic() >= self._expires:
            await self._refresh()
        if self._error is not None:
            raise self._error
        assert self._states is not None
        return self._states.get(model.lower())

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
            async with session.get(self.url, timeout=self._timeout) as response:
                body = await response.read()
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
            self._states = index_states(orjson.loads(body))
            self._error = None
            self._expires = time.monotonic() + self._cache_seconds
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            reason = (
                "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            )
            logger.warning("status page of cluster %s (%s): %s", self.cluster, self.url, reason)
            self._error = GatewayError(
                503,
                "cluster_status_unavailable",
                f"The status of cluster {self.cluster!r} cannot be read ({reason}), so the "
                "gateway cannot tell whether the model is running. Try again later.",
                info={"cluster": self.cluster},
            )
            # Failures are remembered briefly too, so a dead status page is not hammered.
            self._expires = time.monotonic() + min(self._cache_seconds, 2.0)


def status_page_of(cluster: object) -> StatusPage | None:
    """The cluster adapter's status page, if its kind has one and it is configured."""
    page = getattr(cluster, "status_page", None)
    return page if isinstance(page, StatusPage) else None
