"""Executor that runs registered functions on Globus Compute endpoints (globus-compute-sdk 4.x).

One session per credential set (the service identity, or an endpoint's override) holds its
clients, created once. The two calls every task makes, its submission and the status poll, go
out with aiohttp on the event loop (web.py: the SDK's request, the SDK's errors); the SDK still
builds the batch and reads the results. The SDK's other calls are synchronous (sign-in, token
renewal, endpoint status): they run in a bounded thread pool with a timeout, never on the event
loop. No call is retried by a transport (a call takes at most COMPUTE_SERVICE_TIMEOUT).
Submissions that queue up while a call is in flight go out together as one batch, per endpoint;
the results of all pending tasks are asked for in one call per interval, except those of
streams still relaying (pulse.py). A request that times out or goes away only stops waiting;
nothing shared is shut down.

One slow endpoint must not starve the others: each endpoint has its own submission queue and
submitter (one call at a time), and its calls in threads hold at most
COMPUTE_SDK_THREADS_PER_ENDPOINT of the pool's threads (until the thread is done, not until the
wait gives up), so the rest stay for other endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import globus_sdk
from globus_compute_sdk import Client
from globus_compute_sdk.sdk.batch import UserRuntime
from globus_compute_sdk.serialize import ComputeSerializer
from globus_sdk.transport import RequestsTransport

from resource_server_async.auth.globus_api import no_retries
from resource_server_async.compute import once
from resource_server_async.compute.base import (
    ComputeError,
    ComputeExecutor,
    ComputeNotConfigured,
    ComputeRefused,
    ComputeServiceError,
    ComputeTimeout,
    EndpointState,
    EndpointUnavailable,
    RemoteFunctionError,
    ResultTooLarge,
    remote_reason,
)
from resource_server_async.compute.pulse import QUIET_SECONDS, StreamPulse
from resource_server_async.compute.submission import SubmissionBuilder, canonical_uuid
from resource_server_async.compute.web import (
    AnswerTooLarge,
    ComputeWeb,
    ServiceAddress,
    current_header,
)
from resource_server_async.refreshing_cache import RefreshingCache

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Tasks per submission and per status call: large enough to matter, small enough for the API.
MAX_BATCH = 100
# A failing status call is logged at most this often (s), not on every poll.
POLL_WARNING_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    service_account_id: str
    service_account_secret: str = field(repr=False)
    overrides: dict[str, Any] = field(default_factory=dict, repr=False)
    poll_interval: float = 0.5
    service_timeout: float = 30.0
    status_cache_seconds: float = 10.0
    threads: int = 8
    threads_per_endpoint: int = 2
    submit_queue: int = 1000
    connections: int = 8
    max_answer_bytes: int = 64 * 1024 * 1024
    stream_quiet: float = QUIET_SECONDS


def credentials_for(endpoint_uuid: str, config: ExecutorSettings) -> Credentials:
    """The endpoint's own credentials if GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES has them, else the
    service account's."""
    override = config.overrides.get(endpoint_uuid)
    if override is not None:
        if (
            not isinstance(override, dict)
            or not isinstance(override.get("client_id"), str)
            or not isinstance(override.get("client_secret"), str)
            or not override["client_id"]
            or not override["client_secret"]
        ):
            raise ComputeNotConfigured(
                f"GLOBUS_ENDPOINT_CREDENTIALS_OVERRIDES for endpoint {endpoint_uuid} needs "
                '{"client_id": ..., "client_secret": ...}'
            )
        return Credentials(override["client_id"], override["client_secret"])
    if not config.service_account_id or not config.service_account_secret:
        raise ComputeNotConfigured(
            "SERVICE_ACCOUNT_ID and SERVICE_ACCOUNT_SECRET are not set, so the gateway cannot "
            "submit Globus Compute tasks"
        )
    return Credentials(config.service_account_id, config.service_account_secret)


def state_from_status(document: Any) -> EndpointState:
    """EndpointState from the service's `GET /v2/endpoints/{id}/status` document."""
    if not isinstance(document, dict):
        return EndpointState("unknown", detail="unreadable status")
    status = str(document.get("status", "")).lower()
    details = document.get("details")
    details = details if isinstance(details, dict) else {}
    counts: dict[str, int] = {}
    for key in ("managers", "total_workers"):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            counts[key] = int(details[key])
    workers: int | None = None
    if counts:
        # No manager means no block (no batch job) is up, whatever the worker count says.
        workers = min(counts.values()) and counts.get("total_workers", counts.get("managers"))
    if status == "online":
        reported = "workers not reported" if workers is None else f"{workers} workers"
        return EndpointState("online", workers=workers, detail=reported)
    if status == "offline":
        return EndpointState("offline", workers=0, detail="offline")
    return EndpointState("unknown", workers=workers, detail=f"status {status or 'missing'}")


def _service_error(exc: Exception, doing: str) -> ComputeError:
    if isinstance(exc, ComputeError):
        return exc
    if isinstance(exc, globus_sdk.GlobusAPIError):
        message = exc.message or exc.code or "error"
        if exc.http_status == 404:
            return EndpointUnavailable(f"{doing}: Globus Compute does not know it ({message})")
        if exc.http_status in (401, 403):
            return ComputeRefused(
                f"{doing}: Globus Compute answered {exc.http_status}: {message}", exc.http_status
            )
        return ComputeServiceError(f"{doing}: Globus Compute answered {exc.http_status}: {message}")
    if isinstance(exc, globus_sdk.NetworkError):
        return ComputeServiceError(f"{doing}: cannot reach Globus Compute ({type(exc).__name__})")
    return ComputeServiceError(f"{doing}: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class Clients:
    """A session's clients. The SDK Client only builds batches (no network: its calls share
    one lock, and its transport retries); submissions and polls go through web.py, the other
    calls through a plain globus-sdk client with our timeout and no retries, as the auth code's
    do. Both take their Authorization from one authorizer."""

    sdk: Client
    v2: globus_sdk.ComputeClientV2
    authorizer: globus_sdk.ClientCredentialsAuthorizer
    address: ServiceAddress  # where web.py sends the hot calls, as the SDK's transport would
    runtime: UserRuntime  # described once: each batch carries it
    submissions: SubmissionBuilder  # the submit documents, with that runtime


def connect(credentials: Credentials, timeout: float) -> Clients:
    """Clients signed in with client credentials (blocking: fetches the first token)."""
    transport = RequestsTransport(http_timeout=timeout)
    auth = globus_sdk.ConfidentialAppAuthClient(
        credentials.client_id,
        credentials.client_secret,
        transport=transport,
        retry_config=no_retries(),
    )
    try:
        # Bad credentials show up here, once.
        authorizer = globus_sdk.ClientCredentialsAuthorizer(auth, scopes=Client.FUNCX_SCOPE)
    except globus_sdk.AuthAPIError as exc:
        raise ComputeNotConfigured(
            f"Globus Auth refused the client credentials {credentials.client_id} "
            f"(HTTP {exc.http_status})"
        ) from None
    sdk = Client(authorizer=authorizer, do_version_check=False)
    # globus-sdk's own override of a service's address (a stand-in, a test deployment);
    # the Compute SDK's Client reads only GLOBUS_SDK_ENVIRONMENT, so its own calls (function
    # registration: manage.py register_functions) are sent there by hand.
    override = os.environ.get("GLOBUS_SDK_SERVICE_URL_COMPUTE")
    if override:
        for own in (sdk._compute_web_client.v2, sdk._compute_web_client.v3):
            own.base_url = override
    base_url = override or sdk.web_service_address
    # Its proxy looked up once (see once.py), for the SDK's calls and web.py's alike.
    transport = once.pinned_transport(base_url, timeout)
    web = globus_sdk.ComputeClientV2(
        base_url=base_url, authorizer=authorizer, transport=transport, retry_config=no_retries()
    )
    user_runtime = once.runtime()
    return Clients(
        sdk,
        web,
        authorizer,
        ServiceAddress.of(base_url, transport),
        user_runtime,
        SubmissionBuilder(sdk.fx_serializer, user_runtime),
    )


class EndpointSlots:
    """Threads of the pool that each endpoint's calls may hold at once."""

    def __init__(self, per_endpoint: int) -> None:
        self._per_endpoint = max(1, per_endpoint)
        self._slots: dict[str, asyncio.Semaphore] = {}

    def of(self, endpoint_uuid: str) -> asyncio.Semaphore:
        slots = self._slots.get(endpoint_uuid)
        if slots is None:
            slots = self._slots[endpoint_uuid] = asyncio.Semaphore(self._per_endpoint)
        return slots


async def _outcome(work: Future[T], slots: asyncio.Semaphore | None) -> T:
    """`work`'s result, waited for on the loop. Its slot (if any) is released when the thread is
    done, not when the wait gives up: a call whose wait gave up still holds its thread. Both
    happen in one callback on the loop: each wake-up of the loop from a thread costs (profiled
    at one task at a time, the hand-offs to and from the pool were a third of the CPU)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def settle(done: Future[T]) -> None:
        if slots is not None:
            slots.release()
        if answer.done():  # the wait gave up
            return
        if done.cancelled():
            answer.cancel()
        elif (error := done.exception()) is not None:
            answer.set_exception(error)
        else:
            answer.set_result(done.result())

    def from_thread(done: Future[T]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed at shutdown
            loop.call_soon_threadsafe(settle, done)

    work.add_done_callback(from_thread)
    try:
        return await answer
    except asyncio.CancelledError:
        work.cancel()  # not started yet: it never runs
        raise


@dataclass(slots=True)
class _Submission:
    endpoint_uuid: str
    function_uuid: str
    args: tuple[Any, ...]
    task_id: asyncio.Future[str]


class ComputeSession:
    """One credential set: its SDK Client, the batching submitter and the result poller."""

    def __init__(
        self,
        credentials: Credentials,
        threads: ThreadPoolExecutor,
        slots: EndpointSlots,
        config: ExecutorSettings,
    ) -> None:
        self.credentials = credentials
        self._threads = threads
        self._slots = slots
        self._config = config
        self._clients: Clients | None = None
        self._connecting = asyncio.Lock()
        self._submissions: dict[str, asyncio.Queue[_Submission]] = {}
        self._submitters: dict[str, asyncio.Task[None]] = {}
        self._waiters: dict[str, asyncio.Future[Any]] = {}
        self._pulses: dict[str, StreamPulse] = {}
        self._poller: asyncio.Task[None] | None = None
        self._last_poll_warning = 0.0
        self._web = ComputeWeb(config.service_timeout, config.connections, config.max_answer_bytes)
        self._renewing = asyncio.Lock()

    # --- threads ---------------------------------------------------------------------------

    async def _call(
        self, doing: str, function: Callable[..., T], *args: Any, endpoint: str = ""
    ) -> T:
        """Run a blocking SDK call in the pool (in one of `endpoint`'s slots when it concerns
        one endpoint); its errors become ComputeErrors."""
        try:
            async with asyncio.timeout(self._config.service_timeout):
                return await self._in_thread(endpoint, function, *args)
        except TimeoutError:
            raise self._no_answer(doing) from None
        except Exception as exc:
            raise _service_error(exc, doing) from None

    def _no_answer(self, doing: str) -> ComputeServiceError:
        return ComputeServiceError(
            f"{doing}: Globus Compute did not answer within {self._config.service_timeout:g}s"
        )

    async def _in_thread(self, endpoint: str, function: Callable[..., T], *args: Any) -> T:
        slots = self._slots.of(endpoint) if endpoint else None
        if slots is not None:
            await slots.acquire()
        try:
            work = self._threads.submit(function, *args)
        except BaseException:
            if slots is not None:
                slots.release()
            raise
        return await _outcome(work, slots)

    async def clients(self) -> Clients:
        if self._clients is None:
            async with self._connecting:
                if self._clients is None:
                    self._clients = await self._call(
                        "sign-in", connect, self.credentials, self._config.service_timeout
                    )
        return self._clients

    # --- the loop's calls (web.py) ------------------------------------------------------------

    async def _on_loop(self, doing: str, call: Awaitable[T]) -> T:
        """Await a web.py call; its errors become ComputeErrors as the SDK's do in _call."""
        try:
            return await call
        except TimeoutError:
            raise self._no_answer(doing) from None
        except Exception as exc:
            raise _service_error(exc, doing) from None

    async def _authorization(self, clients: Clients) -> str:
        """The Authorization header; a token near its expiry is renewed in the pool, once for
        all the calls that need it meanwhile."""
        header = current_header(clients.authorizer)
        if header is not None:
            return header
        async with self._renewing:
            header = current_header(clients.authorizer)
            if header is None:
                header = await self._call(
                    "renew the Globus Compute token", clients.authorizer.get_authorization_header
                )
        return header

    def _refused(self, exc: ComputeError) -> None:
        if isinstance(exc, ComputeRefused) and exc.http_status == 401:
            # Sign in again on the next call: the token itself was refused (revoked). Without
            # transport retries, the SDK no longer does this on its own.
            self._clients = None

    # --- submission ------------------------------------------------------------------------

    async def submit(self, endpoint_uuid: str, function_uuid: str, args: tuple[Any, ...]) -> str:
        task_id: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        queue = self._submissions.get(endpoint_uuid)
        if queue is None:
            queue = self._submissions[endpoint_uuid] = asyncio.Queue(self._config.submit_queue)
        try:
            queue.put_nowait(_Submission(endpoint_uuid, function_uuid, args, task_id))
        except asyncio.QueueFull:
            raise EndpointUnavailable(
                f"{self._config.submit_queue} tasks are already waiting to be submitted to "
                "this endpoint"
            ) from None
        submitter = self._submitters.get(endpoint_uuid)
        if submitter is None or submitter.done():
            self._submitters[endpoint_uuid] = asyncio.get_running_loop().create_task(
                self._submit_forever(endpoint_uuid, queue)
            )
        return await task_id

    async def _submit_forever(self, endpoint_uuid: str, queue: asyncio.Queue[_Submission]) -> None:
        """One endpoint's submissions, so that a slow endpoint holds up only its own."""
        while True:
            pending = [await queue.get()]
            while len(pending) < MAX_BATCH and not queue.empty():
                pending.append(queue.get_nowait())
            groups: dict[str, list[_Submission]] = {}
            for item in pending:
                if not item.task_id.done():  # its request went away before it was sent
                    groups.setdefault(item.function_uuid, []).append(item)
            for function_uuid, items in groups.items():
                await self._submit_group(endpoint_uuid, function_uuid, items)

    async def _submit_group(
        self, endpoint_uuid: str, function_uuid: str, items: list[_Submission]
    ) -> None:
        doing = f"submit to endpoint {endpoint_uuid}"
        try:
            clients = await self.clients()
            task_ids = await self._on_loop(
                doing,
                self._submit_batch(clients, endpoint_uuid, function_uuid, [i.args for i in items]),
            )
        except ComputeError as exc:
            self._refused(exc)
            for item in items:
                if not item.task_id.done():
                    item.task_id.set_exception(exc)
            return
        for item, task_id in zip(items, task_ids, strict=True):
            if not item.task_id.done():
                item.task_id.set_result(task_id)

    async def _submit_batch(
        self, clients: Clients, endpoint_uuid: str, function_uuid: str, arg_lists: list[Any]
    ) -> list[str]:
        """Submit one task per argument tuple in one call; their task ids in the same order."""
        document = clients.submissions.document(function_uuid, arg_lists)
        authorization = await self._authorization(clients)
        response = await self._web.submit(clients.address, authorization, endpoint_uuid, document)
        return _task_ids(response, function_uuid, len(arg_lists))

    # --- results ---------------------------------------------------------------------------

    async def result(self, task_id: str, pulse: StreamPulse | None = None) -> Any:
        """The task's result; while `pulse` says its stream is live, it is not asked for."""
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[task_id] = waiter
        if pulse is not None:
            self._pulses[task_id] = pulse
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll_while_waiting())
        try:
            return await waiter
        finally:
            self._waiters.pop(task_id, None)
            self._pulses.pop(task_id, None)

    def _to_poll(self) -> list[str]:
        pulses = self._pulses
        if not pulses:
            return [tid for tid, waiter in self._waiters.items() if not waiter.done()]
        now, quiet = time.monotonic(), self._config.stream_quiet
        return [
            tid
            for tid, waiter in self._waiters.items()
            if not waiter.done() and not ((pulse := pulses.get(tid)) and pulse.live(now, quiet))
        ]

    async def _read_results(
        self, clients: Clients, task_ids: list[str]
    ) -> dict[str, tuple[bool, Any]]:
        outcomes: dict[str, tuple[bool, Any]] = {}
        for start in range(0, len(task_ids), MAX_BATCH):
            await self._read_batch(clients, task_ids[start : start + MAX_BATCH], outcomes)
        return outcomes

    async def _read_batch(
        self, clients: Clients, task_ids: list[str], outcomes: dict[str, tuple[bool, Any]]
    ) -> None:
        """One status call for `task_ids`. An answer longer than COMPUTE_MAX_ANSWER_BYTES is
        asked for again in halves, so that the other results of a poll still arrive; a task
        whose result alone is longer fails (ResultTooLarge) instead of being polled forever."""
        authorization = await self._authorization(clients)
        try:
            response = await self._web.batch_status(clients.address, authorization, task_ids)
        except AnswerTooLarge as exc:
            if len(task_ids) == 1:
                (task_id,) = task_ids
                message = f"the result of task {task_id} is larger than {exc.limit} bytes"
                outcomes[task_id] = (False, ResultTooLarge(message, task_id))
                return
            half = len(task_ids) // 2
            await self._read_batch(clients, task_ids[:half], outcomes)
            await self._read_batch(clients, task_ids[half:], outcomes)
            return
        _read_outcomes(response, clients.sdk.fx_serializer, outcomes)

    async def _poll_while_waiting(self) -> None:
        while self._waiters:
            await asyncio.sleep(self._config.poll_interval)
            task_ids = self._to_poll()
            if not task_ids:
                continue
            try:
                clients = await self.clients()
                outcomes = await self._on_loop(
                    "read task results", self._read_results(clients, task_ids)
                )
            except ComputeError as exc:
                self._poll_failed(exc)
                continue
            for task_id, (ok, value) in outcomes.items():
                waiter = self._waiters.get(task_id)
                if waiter is None or waiter.done():
                    continue
                if ok:
                    waiter.set_result(value)
                elif isinstance(value, ComputeError):  # the gateway's own refusal of it
                    waiter.set_exception(value)
                else:
                    waiter.set_exception(RemoteFunctionError(value, task_id))

    def _poll_failed(self, exc: ComputeError) -> None:
        self._refused(exc)
        if isinstance(exc, ComputeNotConfigured | ComputeRefused):
            # It will not get better by asking again: fail the waiting requests now.
            logger.warning("globus compute: %s; failing %d waiting tasks", exc, len(self._waiters))
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        now = time.monotonic()
        if now - self._last_poll_warning >= POLL_WARNING_INTERVAL:
            self._last_poll_warning = now
            logger.warning("globus compute: %s; retrying", exc)

    # --- endpoint status -------------------------------------------------------------------

    async def endpoint_status(self, endpoint_uuid: str) -> EndpointState:
        """Never raises: a status that cannot be read is "unknown" (requests still go ahead)."""
        try:
            web = (await self.clients()).v2
            document = await self._call(
                f"status of endpoint {endpoint_uuid}",
                lambda: web.get_endpoint_status(endpoint_uuid).data,
                endpoint=endpoint_uuid,
            )
        except EndpointUnavailable as exc:
            return EndpointState("offline", workers=0, detail=str(exc))
        except ComputeError as exc:
            self._refused(exc)
            logger.warning("globus compute: %s", exc)
            return EndpointState("unknown", detail=str(exc))
        return state_from_status(document)

    async def close(self) -> None:
        for task in (*self._submitters.values(), self._poller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._web.close()
        closing = ComputeServiceError("the gateway is shutting down")
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(closing)
        for queue in self._submissions.values():
            while not queue.empty():
                item = queue.get_nowait()
                if not item.task_id.done():
                    item.task_id.set_exception(closing)


def _task_ids(response: Any, function_uuid: str, count: int) -> list[str]:
    """The task ids of a submission's answer, in the order the tasks were added."""
    tasks = response.get("tasks") if isinstance(response, dict) else None
    if not isinstance(tasks, dict):
        raise ComputeServiceError("Globus Compute answered the submission without task ids")
    task_ids = tasks.get(canonical_uuid(function_uuid), [])
    if len(task_ids) != count:
        raise ComputeServiceError(
            f"Globus Compute returned {len(task_ids)} task ids for {count} tasks"
        )
    return [str(task_id) for task_id in task_ids]


def _read_outcomes(
    response: Any, serializer: ComputeSerializer, outcomes: dict[str, tuple[bool, Any]]
) -> None:
    """Add {task id: (True, result) or (False, short reason)} for the tasks that finished."""
    results = response.get("results") if isinstance(response, dict) else None
    if results is not None and not isinstance(results, dict):
        raise ComputeServiceError("Globus Compute answered the status call without results")
    for task_id, info in (results or {}).items():
        if not isinstance(info, dict):
            continue
        status = str(info.get("status", "")).lower()
        if "result" in info:
            try:
                outcomes[task_id] = (True, serializer.deserialize(info["result"]))
            except Exception as exc:
                outcomes[task_id] = (False, f"the task's result cannot be read: {exc}")
        elif "exception" in info:
            outcomes[task_id] = (False, remote_reason(str(info["exception"])))
        elif status in ("success", "failed"):
            outcomes[task_id] = (False, str(info.get("reason") or f"task {status}"))


class GlobusComputeExecutor(ComputeExecutor):
    def __init__(self, config: ExecutorSettings) -> None:
        self._config = config
        self._threads = ThreadPoolExecutor(max(1, config.threads), thread_name_prefix="globus")
        self._slots = EndpointSlots(config.threads_per_endpoint)
        self._sessions: dict[Credentials, ComputeSession] = {}
        self._running = 0
        self._states: RefreshingCache[str, EndpointState] = RefreshingCache(
            config.status_cache_seconds, 10 * config.status_cache_seconds
        )

    def _session(self, endpoint_uuid: str) -> ComputeSession:
        credentials = credentials_for(endpoint_uuid, self._config)
        session = self._sessions.get(credentials)
        if session is None:
            session = ComputeSession(credentials, self._threads, self._slots, self._config)
            self._sessions[credentials] = session
        return session

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
        for name, value in (("endpoint", endpoint_uuid), ("function", function_uuid)):
            try:
                canonical_uuid(value)
            except ValueError:
                raise ComputeNotConfigured(f"the {name} UUID {value!r} is not a UUID") from None
        session = self._session(endpoint_uuid)
        task_id: str | None = None
        self._running += 1
        try:
            async with asyncio.timeout(timeout):
                task_id = await session.submit(endpoint_uuid, function_uuid, args)
                if on_task is not None:
                    on_task(task_id)
                return await session.result(task_id, pulse)
        except TimeoutError:
            raise ComputeTimeout(f"no result within {timeout:g}s", task_id) from None
        finally:
            self._running -= 1

    @property
    def pending_tasks(self) -> int:
        """Tasks waiting to be submitted or for their result (a timed-out one no longer)."""
        return self._running

    async def endpoint_state(self, endpoint_uuid: str) -> EndpointState:
        try:
            session = self._session(endpoint_uuid)
        except ComputeNotConfigured as exc:
            return EndpointState("unknown", detail=str(exc))
        return await self._states.get(endpoint_uuid, lambda: session.endpoint_status(endpoint_uuid))

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
        self._states.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)
