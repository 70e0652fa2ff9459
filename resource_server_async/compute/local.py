"""Executor that runs the registered functions on this machine (COMPUTE_EXECUTOR=local).

A site whose model server runs beside the gateway needs no Globus: the same function code runs in
a bounded pool of threads (the functions wait on HTTP, so threads suffice), picked by the
function UUID of the endpoint's config (LOCAL_COMPUTE_FUNCTIONS, the project's own by default).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from resource_server_async.compute.base import (
    MAX_REASON_CHARS,
    ComputeExecutor,
    ComputeNotConfigured,
    ComputeTimeout,
    EndpointState,
    EndpointUnavailable,
    RemoteFunctionError,
)
from resource_server_async.compute.functions import FunctionPathError, import_callable

if TYPE_CHECKING:
    from resource_server_async.compute.pulse import StreamPulse

logger = logging.getLogger(__name__)


class _FunctionFailed(Exception):
    """Carries what the function raised out of its thread, already as text."""


def _call(function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    try:
        return function(*args)
    except Exception as exc:
        # The same "Type: message" text a Globus Compute endpoint reports for a failed task.
        raise _FunctionFailed(f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS]) from exc


class LocalExecutor(ComputeExecutor):
    def __init__(
        self,
        function_paths: dict[str, str],
        workers: int,
        queue: int,
        streaming_secret: str = "",
    ) -> None:
        self._paths = {key.lower(): path for key, path in function_paths.items()}
        self._functions: dict[str, Callable[..., Any]] = {}
        self._workers = max(1, workers)
        self._threads = ThreadPoolExecutor(self._workers, thread_name_prefix="local-compute")
        # Running plus waiting tasks; beyond this a request is refused rather than queued.
        self._capacity = self._workers + max(0, queue)
        self._in_pool = 0
        if streaming_secret:
            # The functions read the side-channel secret from their environment, as on a cluster
            # node; here that environment is the gateway's.
            os.environ.setdefault("INTERNAL_STREAMING_SECRET", streaming_secret)

    def _function(self, function_uuid: str) -> Callable[..., Any]:
        key = function_uuid.strip().lower()
        function = self._functions.get(key)
        if function is not None:
            return function
        path = self._paths.get(key)
        if path is None:
            raise ComputeNotConfigured(
                f"function {function_uuid} has no local implementation: map it to a dotted path "
                "in LOCAL_COMPUTE_FUNCTIONS"
            )
        try:
            function = import_callable(path)
        except FunctionPathError as exc:
            raise ComputeNotConfigured(f"LOCAL_COMPUTE_FUNCTIONS[{function_uuid}]: {exc}") from None
        self._functions[key] = function
        return function

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
        function = self._function(function_uuid)
        if self._in_pool >= self._capacity:
            raise EndpointUnavailable(
                f"all {self._workers} local compute workers are busy and "
                f"{self._capacity - self._workers} tasks are waiting"
            )
        task_id = str(uuid.uuid4())
        if on_task is not None:
            on_task(task_id)
        self._in_pool += 1
        future = asyncio.get_running_loop().run_in_executor(self._threads, _call, function, args)
        # The slot is freed when the thread is done, not when a waiter gives up on it.
        future.add_done_callback(self._release)
        try:
            # shield: a client that goes away abandons the wait; the thread finishes on its own.
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise ComputeTimeout(f"no result within {timeout:g}s", task_id) from None
        except _FunctionFailed as exc:
            raise RemoteFunctionError(str(exc), task_id) from None

    def _release(self, future: asyncio.Future[Any]) -> None:
        self._in_pool -= 1
        if not future.cancelled():
            # Mark an abandoned task's error as seen, so asyncio does not log it as lost.
            future.exception()

    async def endpoint_state(self, endpoint_uuid: str) -> EndpointState:
        return EndpointState("online", workers=self._workers, detail="local executor")

    @property
    def pending_tasks(self) -> int:
        return self._in_pool

    async def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
