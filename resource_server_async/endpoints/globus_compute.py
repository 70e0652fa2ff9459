"""Endpoint adapter for models served on HPC clusters through Globus Compute.

The registered inference function receives the payload of CONTRACT.md §3 and calls the model
server on the node. Non-streaming answers come back as the task's result; streamed chunks come
back over the side channel into the stream hub (see compute_stream).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from django.conf import settings
from django.core.cache import cache
from pydantic import Field, model_validator

from resource_server_async import runtime
from resource_server_async.catalog.adapter_config import AdapterConfig
from resource_server_async.compute import function_problems
from resource_server_async.compute.base import ComputeError, ComputeExecutor
from resource_server_async.compute.pulse import StreamPulse
from resource_server_async.endpoints.base import BaseEndpoint, InferenceRequest, UpstreamReply
from resource_server_async.endpoints.compute_outcomes import compute_error, reply_from_result
from resource_server_async.endpoints.compute_stream import ComputeStream
from resource_server_async.endpoints.tokenizer import TokenizerConfig
from resource_server_async.errors import GatewayError
from resource_server_async.streaming import HubBusy, issue_token
from resource_server_async.upstream.errors import endpoint_info, where

logger = logging.getLogger(__name__)

# Keys the gateway sets in model_params; a client's body must not set them (api_port comes from
# the endpoint config, never from the user; the stream target from the gateway's settings).
RESERVED_KEYS = frozenset(
    {
        "openai_endpoint",
        "api_port",
        "streaming_server_host",
        "streaming_server_port",
        "streaming_server_protocol",
        "stream_task_id",
        "stream_task_token",
    }
)
# Wake-up probes in flight, kept so that they are not garbage-collected while they run.
_wake_probes: set[asyncio.Task[Any]] = set()
_last_wake: dict[str, float] = {}


class GlobusComputeEndpointConfig(AdapterConfig):
    api_port: int = Field(ge=1, le=65535, description="port of the inference server on the cluster")
    endpoint_uuid: str = Field(
        min_length=1, description="Globus Compute endpoint that runs the model"
    )
    function_uuid: str = Field(min_length=1, description="registered inference function")
    batch_endpoint_uuid: str | None = None
    batch_function_uuid: str | None = None
    # Anthropic count_tokens on a server without Messages (endpoints/tokenizer.py).
    tokenizer: TokenizerConfig = Field(
        default_factory=TokenizerConfig, description="the server's tokenizer route"
    )
    # The Responses API (inference/responses_api.py): "translate" runs the function with
    # openai_endpoint "chat/completions"; hosted tools then dropped, or refused with 400.
    responses_api: Literal["auto", "native", "translate"] = Field(
        default="auto", description="how OpenAI Responses requests reach the server"
    )
    responses_hosted_tools: Literal["drop", "refuse"] = Field(
        default="drop", description="translated Responses: hosted tools dropped or refused"
    )

    @model_validator(mode="after")
    def _batch_pair(self) -> GlobusComputeEndpointConfig:
        if bool(self.batch_endpoint_uuid) != bool(self.batch_function_uuid):
            raise ValueError("batch_endpoint_uuid and batch_function_uuid must be set together")
        return self

    @property
    def supports_batch(self) -> bool:
        return bool(self.batch_endpoint_uuid and self.batch_function_uuid)


class GlobusComputeEndpoint(BaseEndpoint):
    Config = GlobusComputeEndpointConfig

    @classmethod
    def environment_problems(cls, config: AdapterConfig) -> list[str]:
        assert isinstance(config, GlobusComputeEndpointConfig)
        return function_problems(config.function_uuid)

    @property
    def compute(self) -> GlobusComputeEndpointConfig:
        assert isinstance(self.config, GlobusComputeEndpointConfig)
        return self.config

    def payload(self, request: InferenceRequest, stream: dict[str, Any] | None = None) -> dict:
        params = {key: value for key, value in request.body.items() if key not in RESERVED_KEYS}
        params["openai_endpoint"] = request.operation
        params["api_port"] = self.compute.api_port
        params.update(stream or {})
        return {"model_params": params}

    async def complete(self, request: InferenceRequest) -> UpstreamReply:
        executor = runtime.current.executor
        await self.check_ready(executor)
        request.calling(self)
        try:
            result = await executor.run(
                self.compute.endpoint_uuid,
                self.compute.function_uuid,
                (self.payload(request),),
                timeout=settings.COMPUTE_RESULT_TIMEOUT,
                on_task=_task_noter(request),
            )
        except ComputeError as exc:
            raise compute_error(exc, self) from None
        outcome = request.outcome
        if outcome is not None:
            outcome.upstream_answered = outcome.first_byte = time.perf_counter()
        return reply_from_result(
            result, self, outcome.compute_task_id if outcome else None, outcome
        )

    async def open_stream(self, request: InferenceRequest) -> AsyncIterator[bytes]:
        executor = runtime.current.executor
        await self.check_ready(executor)
        if not settings.INTERNAL_STREAMING_SECRET:
            raise GatewayError(
                503,
                "streaming_not_configured",
                f"Streaming from {where(self)} needs INTERNAL_STREAMING_SECRET on the gateway. "
                "Send the request without stream, or ask the gateway operator.",
            )
        hub = runtime.current.hub
        stream_id = str(uuid.uuid4())
        try:
            subscription = await hub.open(stream_id, settings.STREAMING_MAX_SECONDS)
        except HubBusy:
            raise GatewayError(
                503,
                "stream_hub_busy",
                "The gateway is relaying as many streams as it may (STREAMING_REDIS_READERS). "
                "Try again shortly, or send the request without stream.",
                headers={"Retry-After": "1"},
            ) from None
        except Exception as exc:
            logger.error("stream hub: cannot open a stream: %s", exc)
            raise GatewayError(
                503,
                "stream_hub_unavailable",
                "The gateway cannot relay streams right now. Try again, or send the request "
                "without stream.",
            ) from None
        target = {
            "streaming_server_host": settings.STREAMING_SERVER_HOST,
            "streaming_server_port": settings.STREAMING_SERVER_PORT,
            "streaming_server_protocol": settings.STREAMING_SERVER_PROTOCOL,
            "stream_task_id": stream_id,
            "stream_task_token": issue_token(stream_id, settings.STREAMING_MAX_SECONDS),
        }
        request.calling(self)
        pulse = StreamPulse()  # while chunks flow, the task's result is not polled for
        run = asyncio.get_running_loop().create_task(
            executor.run(
                self.compute.endpoint_uuid,
                self.compute.function_uuid,
                (self.payload(request, target),),
                timeout=min(settings.COMPUTE_RESULT_TIMEOUT, settings.STREAMING_MAX_SECONDS),
                on_task=_task_noter(request),
                pulse=pulse,
            )
        )
        stream = ComputeStream(
            hub=hub,
            subscription=subscription,
            run=run,
            endpoint=self,
            operation=request.operation,
            first_chunk_timeout=settings.STREAMING_FIRST_CHUNK_TIMEOUT,
            idle_timeout=settings.STREAMING_IDLE_TIMEOUT,
            outcome=request.outcome,
            result_wait=settings.STREAMING_RESULT_WAIT_SECONDS,
            pulse=pulse,
        )
        await stream.start()
        if request.outcome is not None:
            request.outcome.upstream_answered = request.outcome.first_byte = time.perf_counter()
        return stream.events()

    async def check_ready(self, executor: ComputeExecutor) -> None:
        """503 now, rather than a task that waits for long, when the endpoint cannot run it."""
        state = await executor.endpoint_state(self.compute.endpoint_uuid)
        if state.status == "offline":
            raise GatewayError(
                503,
                "endpoint_offline",
                f"The Globus Compute endpoint serving {where(self)} is offline. Try again later.",
                info=endpoint_info(self),
            )
        if state.status == "online" and state.workers == 0:
            await self._wake(executor)
            raise GatewayError(
                503,
                "model_starting",
                f"{where(self).capitalize()} is starting: its batch job is waiting for nodes or "
                "loading the model. Try again in a few minutes.",
                info=endpoint_info(self),
                headers={"Retry-After": str(settings.COMPUTE_STARTING_RETRY_AFTER)},
            )

    async def _wake(self, executor: ComputeExecutor) -> None:
        """Send one health probe: a queued task is what makes the endpoint start a block.

        One per endpoint per COMPUTE_WAKE_INTERVAL across processes (the shared cache decides),
        since each queued task may make the endpoint ask for another node.
        """
        endpoint_uuid = self.compute.endpoint_uuid
        interval = settings.COMPUTE_WAKE_INTERVAL
        now = time.monotonic()
        if now - _last_wake.get(endpoint_uuid, -interval) < interval:
            return
        _last_wake[endpoint_uuid] = now
        try:
            first = await cache.aadd(f"compute-wake:{endpoint_uuid}", 1, timeout=int(interval))
        except Exception as exc:  # a cache outage must not turn a 503 into a 500
            logger.warning("compute wake-up: shared cache unavailable (%s); probing anyway", exc)
            first = True
        if not first:
            return
        probe = {"model_params": {"openai_endpoint": "health", "api_port": self.compute.api_port}}
        task = asyncio.get_running_loop().create_task(
            executor.run(endpoint_uuid, self.compute.function_uuid, (probe,), timeout=interval)
        )
        _wake_probes.add(task)
        task.add_done_callback(_probe_done)
        logger.info("compute wake-up: probing endpoint %s for %s", endpoint_uuid, self.slug)


def _task_noter(request: InferenceRequest) -> Callable[[str], None] | None:
    """What tells the request's outcome its Globus Compute task id."""
    outcome = request.outcome
    if outcome is None:
        return None

    def note(task_id: str) -> None:
        outcome.compute_task_id = task_id

    return note


def _probe_done(task: asyncio.Task[Any]) -> None:
    _wake_probes.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.info("compute wake-up probe ended: %s", task.exception())
