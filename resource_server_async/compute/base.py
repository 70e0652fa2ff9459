"""The executor interface: run a registered function on an endpoint and await its result.

Like HTTPX's transports, the network side is swappable: GlobusComputeExecutor talks to the
Globus Compute service; LocalExecutor runs the same functions on this machine.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Literal

EndpointStatus = Literal["online", "offline", "unknown"]


@dataclass(frozen=True, slots=True)
class EndpointState:
    """What the Compute service says of an endpoint: up or not, and whether workers are ready."""

    status: EndpointStatus
    # Workers ready to run a task now; None when the service does not say.
    workers: int | None = None
    detail: str = ""


class ComputeError(Exception):
    """Base of executor failures; carries the task id when there is one."""

    def __init__(self, message: str, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class RemoteFunctionError(ComputeError):
    """The function ran and raised; the message is a short reason (not a whole traceback)."""


class ComputeTimeout(ComputeError):
    """No result within the timeout. The task may still run remotely."""


class EndpointUnavailable(ComputeError):
    """The endpoint is offline or unknown to the Compute service."""


class ComputeExecutor(abc.ABC):
    """Runs registered functions. One instance per process, shared by all requests."""

    @abc.abstractmethod
    async def run(
        self, endpoint_uuid: str, function_uuid: str, args: tuple[Any, ...], *, timeout: float
    ) -> Any:
        """Submit the function with positional `args` and return its result.

        Raises RemoteFunctionError, ComputeTimeout or EndpointUnavailable. Cancelling the
        awaiting coroutine abandons only this task's wait, never the executor.
        """

    @abc.abstractmethod
    async def endpoint_state(self, endpoint_uuid: str) -> EndpointState:
        """The endpoint's state, cached briefly by the implementation."""

    async def close(self) -> None:
        """Release clients and threads at shutdown."""
