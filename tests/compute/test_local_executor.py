"""LocalExecutor: functions by UUID, a bounded pool, timeouts that only end the wait."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from resource_server_async.compute.base import (
    ComputeNotConfigured,
    ComputeTimeout,
    EndpointState,
    EndpointUnavailable,
    RemoteFunctionError,
)
from resource_server_async.compute.functions import INFERENCE, local_function_paths
from resource_server_async.compute.local import LocalExecutor
from tests.waiting import wait_until_async

ENDPOINT = "any-endpoint"
RELEASE = threading.Event()


def add(a: int, b: int) -> int:
    return a + b


def fail(message: str) -> None:
    raise ValueError(message)


def wait_for_release() -> str:
    RELEASE.wait(5)
    return "released"


NOT_CALLABLE = 42
PATHS = {
    "add": f"{__name__}.add",
    "fail": f"{__name__}.fail",
    "wait": f"{__name__}.wait_for_release",
    "not-callable": f"{__name__}.NOT_CALLABLE",
    "missing": f"{__name__}.no_such_function",
}


@pytest.fixture
async def executor() -> AsyncIterator[LocalExecutor]:
    RELEASE.clear()
    executor = LocalExecutor(PATHS, workers=1, queue=1)
    yield executor
    RELEASE.set()
    await executor.close()


async def test_runs_the_function_its_uuid_names(executor: LocalExecutor) -> None:
    assert await executor.run(ENDPOINT, "ADD", (2, 3), timeout=5) == 5


async def test_a_raising_function_is_a_remote_failure(executor: LocalExecutor) -> None:
    with pytest.raises(RemoteFunctionError) as caught:
        await executor.run(ENDPOINT, "fail", ("bad input",), timeout=5)

    assert str(caught.value) == "ValueError: bad input"
    assert caught.value.task_id


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (
            "unknown",
            "function unknown has no local implementation: map it to a dotted path in "
            "LOCAL_COMPUTE_FUNCTIONS",
        ),
        (
            "not-callable",
            f"LOCAL_COMPUTE_FUNCTIONS[not-callable]: '{__name__}.NOT_CALLABLE' is not callable",
        ),
        (
            "missing",
            f"LOCAL_COMPUTE_FUNCTIONS[missing]: cannot import '{__name__}.no_such_function': "
            f"module '{__name__}' has no attribute 'no_such_function'",
        ),
    ],
)
async def test_unusable_functions_are_not_configured(
    executor: LocalExecutor, function: str, message: str
) -> None:
    with pytest.raises(ComputeNotConfigured) as caught:
        await executor.run(ENDPOINT, function, (), timeout=5)

    assert str(caught.value) == message


async def test_timeout_ends_the_wait_and_the_pool_goes_on(executor: LocalExecutor) -> None:
    with pytest.raises(ComputeTimeout) as caught:
        await executor.run(ENDPOINT, "wait", (), timeout=0.1)
    assert str(caught.value) == "no result within 0.1s"

    RELEASE.set()
    assert await executor.run(ENDPOINT, "add", (1, 1), timeout=5) == 2


async def test_a_full_pool_refuses_instead_of_queueing_without_bound(
    executor: LocalExecutor,
) -> None:
    running = asyncio.ensure_future(executor.run(ENDPOINT, "wait", (), timeout=5))
    waiting = asyncio.ensure_future(executor.run(ENDPOINT, "add", (1, 2), timeout=5))
    # Both have taken their place (one running, one waiting) before the third asks.
    await wait_until_async(lambda: executor._in_pool == 2)

    with pytest.raises(EndpointUnavailable) as caught:
        await executor.run(ENDPOINT, "add", (3, 4), timeout=5)

    assert str(caught.value) == "all 1 local compute workers are busy and 1 tasks are waiting"
    RELEASE.set()
    assert await running == "released"
    assert await waiting == 3


async def test_always_online(executor: LocalExecutor) -> None:
    assert await executor.endpoint_state(ENDPOINT) == EndpointState(
        "online", workers=1, detail="local executor"
    )


def test_project_functions_are_the_defaults_and_can_be_overridden() -> None:
    paths = local_function_paths({"ABC": "my.module.fn"})

    assert paths[INFERENCE.local_uuid] == "compute_functions.inference.inference_function"
    assert paths["abc"] == "my.module.fn"
