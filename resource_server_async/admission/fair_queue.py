"""The endpoint capacity and fair queue of a gateway without Redis: in this process only.

Start-time fair queueing across projects: each project with waiters carries a tag, the virtual
time at which its next request is due; a free slot goes to the project with the smallest tag,
whose tag then grows by 1 / weight (a weight-2 project is due twice as often). A project that
starts waiting joins at the endpoint's virtual time (the tag last served), so an idle project
saves no credit and a busy one is not punished for its past. Within a project: priority, then
arrival. The Redis queue (redis_fair_queue.py) keeps the same rules in one Lua script per step.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from resource_server_async.admission.capacity import Place, QueueFull


@dataclass(order=True, slots=True)
class _Waiter:
    priority: int
    seq: int
    place: Place = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)


@dataclass(slots=True)
class _Project:
    tag: float
    weight: float
    waiters: list[_Waiter] = field(default_factory=list)  # a heap


@dataclass(slots=True)
class _Endpoint:
    held: set[str] = field(default_factory=set)
    projects: dict[str, _Project] = field(default_factory=dict)  # those with waiters
    queued: int = 0
    virtual: float = 0.0


class MemoryFairQueue:
    """No await between a decision and its effect, so each step is atomic on the event loop.
    State per endpoint: its held tickets (at most max_concurrent) and its waiters (at most
    FAIR_SHARE_MAX_QUEUED); an endpoint with neither is forgotten."""

    def __init__(self) -> None:
        self._endpoints: dict[str, _Endpoint] = {}
        self._seq = itertools.count()

    def held(self, endpoint: str) -> int:
        state = self._endpoints.get(endpoint)
        return 0 if state is None else len(state.held)

    async def queued(self, endpoint: str) -> int:
        state = self._endpoints.get(endpoint)
        return 0 if state is None else state.queued

    async def enter(self, place: Place, timeout: float) -> bool:
        state = self._endpoints.setdefault(place.endpoint, _Endpoint())
        if not state.projects and len(state.held) < place.limit:
            state.held.add(place.ticket)
            return True
        project = state.projects.get(place.project)
        if state.queued >= place.max_queued:
            raise QueueFull(project_full=False)
        if project is not None and len(project.waiters) >= place.max_queued_project:
            raise QueueFull(project_full=True)
        if project is None:
            project = _Project(state.virtual + 1 / place.weight, place.weight)
            state.projects[place.project] = project
        waiter = _Waiter(
            place.priority, next(self._seq), place, asyncio.get_running_loop().create_future()
        )
        heapq.heappush(project.waiters, waiter)
        state.queued += 1
        self._dispatch(state, place.limit)  # the limit may have grown since the last step
        try:
            async with asyncio.timeout(timeout):
                await waiter.granted
            return True
        except TimeoutError:
            self._drop(state, place, waiter)
            if place.ticket in state.held:  # granted at the very end: keep it
                return True
            await self.leave(place)  # forgets the endpoint if nothing is left there
            return False
        except asyncio.CancelledError:
            self._drop(state, place, waiter)
            await self.leave(place)
            raise

    async def leave(self, place: Place) -> None:
        state = self._endpoints.get(place.endpoint)
        if state is None:
            return
        state.held.discard(place.ticket)
        self._dispatch(state, place.limit)
        if not state.held and not state.projects:
            del self._endpoints[place.endpoint]

    async def has_room(self, endpoints: Sequence[tuple[str, int]]) -> list[bool]:
        room = []
        for slug, limit in endpoints:
            state = self._endpoints.get(slug)
            room.append(state is None or (not state.projects and len(state.held) < limit))
        return room

    async def close(self) -> None:
        for state in self._endpoints.values():
            for project in state.projects.values():
                for waiter in project.waiters:
                    waiter.granted.cancel()
        self._endpoints.clear()

    def _drop(self, state: _Endpoint, place: Place, waiter: _Waiter) -> None:
        """Take a waiter that stops waiting out of its project's queue (if still there)."""
        project = state.projects.get(place.project)
        if project is None or waiter not in project.waiters:
            return
        project.waiters.remove(waiter)
        heapq.heapify(project.waiters)
        state.queued -= 1
        if not project.waiters:
            del state.projects[place.project]

    def _dispatch(self, state: _Endpoint, limit: int) -> None:
        """Grant free slots to waiters in fair order."""
        while len(state.held) < limit and state.projects:
            name, project = min(state.projects.items(), key=lambda item: item[1].tag)
            waiter = heapq.heappop(project.waiters)
            state.queued -= 1
            state.virtual = project.tag
            if project.waiters:
                project.tag += 1 / project.weight
            else:
                del state.projects[name]
            if not waiter.granted.done():  # not cancelled in this very step
                state.held.add(waiter.place.ticket)
                waiter.granted.set_result(None)
