"""The executor interface: run a registered function on an endpoint and await its result.

Like HTTPX's transports, the network side is swappable: GlobusComputeExecutor talks to the
Globus Compute service; LocalExecutor runs the same functions on this machine.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from resource_server_async.compute.pulse import StreamPulse

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


class ResultTooLarge(ComputeError):
    """The task's result is larger than the gateway reads from the Compute service
    (COMPUTE_MAX_ANSWER_BYTES)."""


class ComputeTimeout(ComputeError):
    """No result within the timeout. The task may still run remotely."""


class EndpointUnavailable(ComputeError):
    """The endpoint is offline or unknown to the Compute service, or cannot take more tasks."""


class ComputeServiceError(ComputeError):
    """The Compute service refused or failed a call (submission, status); not the function."""


class ComputeRefused(ComputeServiceError):
    """The Compute service refused the gateway's credentials or rights (401, 403): asking again
    with them will not help, so nobody should wait for it."""

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


class ComputeNotConfigured(ComputeError):
    """This gateway lacks what it needs to run the function (credentials, a function path)."""


# Longest remote reason kept: enough for an inference server's error body, not a log file.
MAX_REASON_CHARS = 4000


def remote_reason(text: str) -> str:
    """The raised exception's own lines from a remote traceback, without the stack frames.

    `Traceback ...` blocks end with the exception line(s) `Type: message`, whose message may
    span lines (deployed functions raise "API request failed with status code: 400\nResponse
    text: ..."); frame lines are indented. Chained tracebacks keep only the last exception.
    """
    lines = text.strip().splitlines()
    start = 0
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            start = index + 1
    tail = lines[start:]
    while tail and (tail[0].startswith((" ", "\t")) or not tail[0].strip()):
        tail = tail[1:]
    reason = "\n".join(tail).strip() or (lines[-1].strip() if lines else "")
    return reason[:MAX_REASON_CHARS]


class ComputeExecutor(abc.ABC):
    """Runs registered functions. One instance per process, shared by all requests."""

    @abc.abstractmethod
    async def run(
        self,
        endpoint_uuid: str,
        function_uuid: str,
        args: tuple[Any, ...],
        *,
        timeout: float,
        on_task: Callable[[str], None] | None = None,
        pulse: StreamPulse | None = None,
    ) -> Any:
        """Submit the function with positional `args` and return its result.

        Raises RemoteFunctionError, ComputeTimeout, EndpointUnavailable, ComputeServiceError or
        ComputeNotConfigured. `on_task` is told the task id once there is one (for the
        request's record). `pulse`, a streaming task's: while it says the stream relays, the
        result is not asked for (an executor that does not poll ignores it). Cancelling the
        awaiting coroutine abandons only this task's wait, never the executor.
        """

    @abc.abstractmethod
    async def endpoint_state(self, endpoint_uuid: str) -> EndpointState:
        """The endpoint's state, cached briefly by the implementation."""

    @property
    def pending_tasks(self) -> int:
        """Tasks submitted through this executor and not finished (for the metrics)."""
        return 0

    async def close(self) -> None:
        """Release clients and threads at shutdown."""
