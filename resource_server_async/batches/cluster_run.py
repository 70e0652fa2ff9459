"""A cluster batch in the worker: the registered batch function submitted through the executor
with the reference gateway's payload, its task tracked until it ends, its result stored.

A worker that takes over a batch whose worker died submits the function again: the function
resumes from its progress file (compute_functions/batch.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from django.utils import timezone

from resource_server_async import runtime
from resource_server_async.batches import claims, status
from resource_server_async.batches.database import in_thread
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.compute.base import ComputeError
from resource_server_async.endpoints.globus_compute import GlobusComputeEndpointConfig
from resource_server_async.models import Batch

logger = logging.getLogger(__name__)


class BatchFunctionFailed(Exception):
    """The batch cannot run or its function failed; the message is the caller's."""


def _record_task(batch_id: str, task_id: str) -> None:
    batch = Batch.objects.get(pk=batch_id)
    Batch.objects.filter(pk=batch_id).update(task_ids=[*batch.task_ids, task_id])


def _result_of(returned: Any) -> dict[str, Any]:
    if isinstance(returned, str):
        returned = json.loads(returned)
    if not isinstance(returned, dict):
        raise BatchFunctionFailed("the batch function returned no JSON object")
    return returned


class ClusterBatchRun:
    def __init__(self, batch: Batch, worker: str, claim_seconds: float) -> None:
        self.batch = batch
        self.worker = worker
        self.claim_seconds = claim_seconds

    def _payload(self) -> tuple[GlobusComputeEndpointConfig, dict[str, Any]]:
        batch = self.batch
        endpoint = catalog.lookup(batch.cluster, batch.framework, batch.model)
        config = None if endpoint is None else endpoint.config
        if not (isinstance(config, GlobusComputeEndpointConfig) and config.supports_batch):
            raise BatchFunctionFailed(
                f"model {batch.model!r} on {batch.cluster!r} no longer takes cluster batches"
            )
        params: dict[str, Any] = {"input_file": batch.input_path, "model": batch.model}
        if batch.output_path:
            params["output_folder_path"] = batch.output_path
        # The node's model server port, as for inference: from the endpoint, never the caller.
        params["api_port"] = config.api_port
        username = str(batch.principal.get("username", ""))
        return config, {"model_params": params, "batch_id": batch.id, "username": username}

    async def run(self) -> None:
        batch = self.batch
        await in_thread(claims.move, batch.id, self.worker, status.RUNNING)
        watch = asyncio.get_running_loop().create_task(self._keep_claim())
        try:
            result = await self._call()
        except (BatchFunctionFailed, ComputeError, ValueError) as exc:
            logger.info("cluster batch %s failed: %s", batch.id, exc)
            await in_thread(
                claims.move,
                batch.id,
                self.worker,
                status.FAILED,
                errors={"message": str(exc)[:4000]},
                claimed_by="",
                claim_expires_at=None,
            )
            return
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await in_thread(
            claims.move,
            batch.id,
            self.worker,
            status.COMPLETED,
            result=result,
            claimed_by="",
            claim_expires_at=None,
        )

    async def _call(self) -> dict[str, Any]:
        config, payload = self._payload()
        assert config.batch_endpoint_uuid and config.batch_function_uuid
        loop = asyncio.get_running_loop()
        recording: list[asyncio.Future[None]] = []

        def on_task(task_id: str) -> None:
            recording.append(loop.create_task(in_thread(_record_task, self.batch.id, task_id)))

        remaining = (self.batch.expires_at - timezone.now()).total_seconds()
        try:
            returned = await runtime.current.executor.run(
                config.batch_endpoint_uuid,
                config.batch_function_uuid,
                (payload,),
                timeout=max(remaining, 1.0),
                on_task=on_task,
            )
        finally:
            await asyncio.gather(*recording)
        return _result_of(returned)

    async def _keep_claim(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.claim_seconds / 3))
            await in_thread(claims.renew, self.batch.id, self.worker, self.claim_seconds, 0, 0)
