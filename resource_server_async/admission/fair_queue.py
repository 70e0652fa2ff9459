"""The endpoint capacity and fair queue of a gateway without Redis: in this process only.

Start-time fair queueing across projects: each project with waiters carries a tag, the virtual
time at which its next request starts; a free slot goes to the project with the smallest tag,
whose tag then grows by 1 / weight (a weight-2 project is due twice as often). A project that
starts waiting joins at the endpoint's virtual time (the tag last served): ahead of a flood
that is already due later, yet with no credit saved from being idle. Within a project:
priority, then arrival.

Anticipation (FAIR_SHARE_GRACE_SECONDS): a slot given back by a project with nothing waiting,
below its fair share, while others wait, is kept for that project for the grace period. A user
who sends one request after another has its next one there within milliseconds; without the
grace every one of them would find the slot just handed to the flood, and wait a whole
service time for the next (the noisy-neighbour test measures it). Unused, it costs one slot for
the grace period. The Redis queue (redis_fair_queue.py) keeps the same rules in Lua scripts.
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
    held: dict[str, str] = field(default_factory=dict)  # ticket (or reservation) -> project
    reserved: dict[str, str] = field(default_factory=dict)  # project -> its reservation
    projects: dict[str, _Project] = field(default_factory=dict)  # those with waiters
    queued: int = 0
    virtual: float = 0.0


class MemoryFairQueue:
    """No await between a decision and its effect, so each step is atomic on the event loop.
    State per endpoint: its held tickets (at most max_concurrent) and its waiters (at most
    FAIR_SHARE_MAX_QUEUED); an endpoint with neither is forgotten."""

    def __init__(self, grace: float = 0.0) -> None:
        self.grace = grace
        self._endpoints: dict[str, _Endpoint] = {}
        self._seq = itertools.count()

    @classmethod
    def from_settings(cls) -> MemoryFairQueue:
        from django.conf import settings

        return cls(settings.FAIR_SHARE_GRACE_SECONDS)

    async def queued(self, endpoint: str) -> int:
        state = self._endpoints.get(endpoint)
        return 0 if state is None else state.queued

    async def enter(self, place: Place, timeout: float) -> bool:
        state = self._endpoints.setdefault(place.endpoint, _Endpoint())
        reservation = state.reserved.pop(place.project, None)
        if reservation is not None:  # the slot its last request gave back, kept for it
            del state.held[reservation]
            state.held[place.ticket] = place.project
            return True
        if not state.projects and len(state.held) < place.limit:
            state.held[place.ticket] = place.project
            return True
        project = state.projects.get(place.project)
        if state.queued >= place.max_queued:
            raise QueueFull(project_full=False)
        if project is not None and len(project.waiters) >= place.max_queued_project:
            raise QueueFull(project_full=True)
        if project is None:
            project = _Project(state.virtual, place.weight)
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
        if state.held.pop(place.ticket, None) is not None and self._anticipates(state, place):
            reservation = f"~{place.ticket}"
            state.held[reservation] = place.project
            state.reserved[place.project] = reservation
            loop = asyncio.get_running_loop()
            loop.call_later(self.grace, self._expire, place, reservation)
            return
        self._dispatch(state, place.limit)
        if not state.held and not state.projects:
            del self._endpoints[place.endpoint]

    def _anticipates(self, state: _Endpoint, place: Place) -> bool:
        """Keep the slot just given back for its project a moment (see the module's doc)?"""
        if not self.grace or not state.projects or place.project in state.projects:
            return False
        if place.project in state.reserved:
            return False
        others = sum(p.weight for p in state.projects.values())
        share = place.limit * place.weight / (place.weight + others)
        holding = sum(1 for project in state.held.values() if project == place.project)
        return holding + 1 <= share

    def _expire(self, place: Place, reservation: str) -> None:
        state = self._endpoints.get(place.endpoint)
        if state is None or state.held.pop(reservation, None) is None:
            return  # taken by the project's next request
        if state.reserved.get(place.project) == reservation:
            del state.reserved[place.project]
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
                state.held[waiter.place.ticket] = name
                waiter.granted.set_result(None)
