"""Executors that run a registered function: on Globus Compute, or locally."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from resource_server_async.compute.base import ComputeExecutor, ComputeNotConfigured

if TYPE_CHECKING:
    from resource_server_async.compute.globus import ExecutorSettings


def build_executor() -> ComputeExecutor:
    """The executor COMPUTE_EXECUTOR names ("globus" or "local"), from settings (the runtime
    builds one and owns it: runtime.current.executor)."""
    kind = settings.COMPUTE_EXECUTOR.strip().lower()
    if kind == "local":
        from resource_server_async.compute.functions import local_function_paths
        from resource_server_async.compute.local import LocalExecutor

        return LocalExecutor(
            local_function_paths(settings.LOCAL_COMPUTE_FUNCTIONS),
            settings.LOCAL_COMPUTE_WORKERS,
            settings.LOCAL_COMPUTE_QUEUE,
            streaming_secret=settings.INTERNAL_STREAMING_SECRET,
        )
    if kind == "globus":
        from resource_server_async.compute.globus import GlobusComputeExecutor

        return GlobusComputeExecutor(globus_settings())
    raise ComputeNotConfigured(
        f"COMPUTE_EXECUTOR={settings.COMPUTE_EXECUTOR!r} is not an executor: use globus or local"
    )


def globus_settings() -> ExecutorSettings:
    from resource_server_async.compute.globus import ExecutorSettings

    return ExecutorSettings(
        service_account_id=settings.SERVICE_ACCOUNT_ID,
        service_account_secret=settings.SERVICE_ACCOUNT_SECRET,
        overrides=settings.GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES,
        poll_interval=settings.COMPUTE_POLL_INTERVAL,
        service_timeout=settings.COMPUTE_SERVICE_TIMEOUT,
        connections=settings.COMPUTE_SERVICE_CONNECTIONS,
        max_answer_bytes=settings.COMPUTE_MAX_ANSWER_BYTES,
        status_cache_seconds=settings.COMPUTE_STATUS_CACHE_SECONDS,
        threads=settings.COMPUTE_SDK_THREADS,
        threads_per_endpoint=settings.COMPUTE_SDK_THREADS_PER_ENDPOINT,
        submit_queue=settings.COMPUTE_SUBMIT_QUEUE,
    )


def function_problems(function_uuid: str) -> list[str]:
    """Why this gateway cannot run the function (for checks): under COMPUTE_EXECUTOR=local,
    a UUID with no implementation. (Globus credentials are not checked here: a machine that
    only checks fixtures need not hold them.)"""
    from resource_server_async.compute.functions import local_function_paths

    if settings.COMPUTE_EXECUTOR.strip().lower() != "local":
        return []
    if function_uuid.strip().lower() in local_function_paths(settings.LOCAL_COMPUTE_FUNCTIONS):
        return []
    return [
        f"function {function_uuid} has no local implementation (COMPUTE_EXECUTOR=local): "
        "map it to a dotted path in LOCAL_COMPUTE_FUNCTIONS"
    ]
