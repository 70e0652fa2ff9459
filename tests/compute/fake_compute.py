"""A stand-in for Globus Auth and the Globus Compute web service: a real HTTP server in a thread.

The real globus-compute-sdk and globus-sdk (and the executor's aiohttp calls) run against it,
sent there by GLOBUS_SDK_SERVICE_URL_AUTH and GLOBUS_SDK_SERVICE_URL_COMPUTE while it runs:
functions registered through it are stored as the service stores them, and each submitted task
is deserialized with the SDK's own serializer and really executed (in a thread, as an
endpoint's worker would), its result or traceback served back by `/v2/batch_status`. The
executed functions reach real servers (the fake model backend, the gateway's side channel).
The test reads and changes its state directly (faults, hung endpoints, counts).
"""

from __future__ import annotations

import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from globus_compute_sdk.serialize import ComputeSerializer
from globus_compute_sdk.serialize.concretes import PureSourceTextInspect

Answer = tuple[int, dict[str, str], bytes]
CLIENT_ID = "6d2d3a1e-5f3a-4d58-9f3b-6c1c8b0a1f00"
CLIENT_SECRET = "test-client-secret-" + uuid.uuid4().hex
TOKEN = "compute-token-" + uuid.uuid4().hex
# Longest a hung submission hangs when the test does not release it.
HOLD_SECONDS = 10.0


@dataclass
class FakeTask:
    task_id: str
    endpoint_id: str
    function_id: str
    payload: str
    future: Future[Any] | None = None
    polls: int = 0


@dataclass
class FakeComputeService:
    """State of the fake service; `start()` registers it with a `responses` mock."""

    functions: dict[str, str] = field(default_factory=dict)  # uuid -> serialized code
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)  # uuid -> status doc
    tasks: dict[str, FakeTask] = field(default_factory=dict)
    # Each task answers "waiting-for-ep" to this many polls before it starts running.
    polls_before_start: int = 0
    # Tasks of these endpoints never start (a model that does not answer in time).
    stuck_endpoints: set[str] = field(default_factory=set)
    # Submissions to these endpoints hang until `release` is set (at most HOLD_SECONDS).
    hung_endpoints: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)  # set once one hangs
    held_now: int = 0
    held_most: int = 0  # most submissions hanging at once
    gave_up: bool = False  # a hung submission ran out of HOLD_SECONDS before `release`
    # Answer this status to every submission / every batch_status call instead (a fault).
    submit_fault: int | None = None
    batch_status_fault: int | None = None
    submit_calls: list[dict[str, Any]] = field(default_factory=list)
    status_calls: int = 0
    batch_status_calls: int = 0
    token_requests: int = 0
    client_secret: str = CLIENT_SECRET
    serializer: ComputeSerializer = field(default_factory=ComputeSerializer)
    _workers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="fake-endpoint")
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- set-up ----------------------------------------------------------------------------

    def add_endpoint(
        self, status: str = "online", managers: int = 1, workers: int = 4, endpoint_id: str = ""
    ) -> str:
        endpoint_id = endpoint_id or str(uuid.uuid4())
        self.set_endpoint(endpoint_id, status, managers, workers)
        return endpoint_id

    def set_endpoint(self, endpoint_id: str, status: str, managers: int, workers: int) -> None:
        self.endpoints[endpoint_id] = {
            "status": status,
            "details": {
                "total_workers": workers,
                "idle_workers": workers,
                "pending_tasks": 0,
                "outstanding_tasks": 0,
                "managers": managers,
            },
        }

    def add_source_function(self, source: str, name: str) -> str:
        """A function as `register_source_code` stores it."""
        function_id = str(uuid.uuid4())
        self.functions[function_id] = PureSourceTextInspect.identifier + f"{name}:{source}"
        return function_id

    def routes(self) -> list[tuple[str, re.Pattern[str], Callable[[Any], Answer]]]:
        return [
            ("POST", re.compile(r"/v2/oauth2/token"), self._token),
            ("POST", re.compile(r"/v3/functions"), self._register),
            ("POST", re.compile(r"/v3/endpoints/[^/]+/submit"), self._submit),
            ("POST", re.compile(r"/v2/batch_status"), self._batch_status),
            ("GET", re.compile(r"/v2/endpoints/[^/]+/status"), self._status),
        ]

    def close(self) -> None:
        self.release.set()  # hung submissions end with the test
        self._workers.shutdown(wait=False, cancel_futures=True)

    # --- handlers (called in the thread that makes the request) ------------------------------

    @staticmethod
    def _json(status: int, body: Any) -> Answer:
        return status, {"Content-Type": "application/json"}, orjson.dumps(body)

    def _error(self, status: int, code: str, message: str) -> Answer:
        return self._json(status, {"code": code, "message": message, "http_status_code": status})

    def _token(self, request: Any) -> Answer:
        self.token_requests += 1
        form = dict(pair.split("=", 1) for pair in (request.body or "").split("&") if pair)
        header = request.headers.get("Authorization", "")
        import base64

        expected = base64.b64encode(f"{CLIENT_ID}:{self.client_secret}".encode()).decode()
        if header != f"Basic {expected}" or form.get("grant_type") != "client_credentials":
            return self._json(401, {"error": "invalid_client"})
        return self._json(
            200,
            {
                "access_token": TOKEN,
                "scope": "https://auth.globus.org/scopes/facd7ccc-c5f4-42aa-916b-a0e270e2c2a9/all",
                "expires_in": 172800,
                "token_type": "Bearer",
                "resource_server": "funcx_service",
                "other_tokens": [],
            },
        )

    def _authorized(self, request: Any) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    def _register(self, request: Any) -> Answer:
        if not self._authorized(request):
            return self._error(401, "UNAUTHORIZED", "bad token")
        body = orjson.loads(request.body)
        function_id = str(uuid.uuid4())
        code = body["function_code"]
        if body.get("serialized", True):
            code = self.serializer.unpack_buffers(code)[0]
        else:
            code = PureSourceTextInspect.identifier + f"{body['function_name']}:{code}"
        self.functions[function_id] = code
        return self._json(200, {"function_uuid": function_id})

    def _submit(self, request: Any) -> Answer:
        if not self._authorized(request):
            return self._error(401, "UNAUTHORIZED", "bad token")
        endpoint_id = request.url.split("/v3/endpoints/")[1].split("/")[0]
        body = orjson.loads(request.body)
        self.submit_calls.append(body)
        if self.submit_fault is not None:
            return self._error(self.submit_fault, "FAULT", f"injected {self.submit_fault}")
        if endpoint_id in self.hung_endpoints:
            self._hang()
        if endpoint_id not in self.endpoints:
            return self._error(404, "ENDPOINT_NOT_FOUND", f"endpoint {endpoint_id} not found")
        tasks: dict[str, list[str]] = {}
        for function_id, payloads in body["tasks"].items():
            if function_id not in self.functions:
                return self._error(404, "FUNCTION_NOT_FOUND", f"function {function_id} not found")
            for payload in payloads:
                task = FakeTask(str(uuid.uuid4()), endpoint_id, function_id, payload)
                with self._lock:
                    self.tasks[task.task_id] = task
                    if self.polls_before_start == 0:
                        self._run(task)
                tasks.setdefault(function_id, []).append(task.task_id)
        return self._json(
            200,
            {
                "request_id": str(uuid.uuid4()),
                "task_group_id": str(uuid.uuid4()),
                "endpoint_id": endpoint_id,
                "tasks": tasks,
            },
        )

    def _hang(self) -> None:
        with self._lock:
            self.held_now += 1
            self.held_most = max(self.held_most, self.held_now)
        self.holding.set()
        if not self.release.wait(HOLD_SECONDS):
            self.gave_up = True
        with self._lock:
            self.held_now -= 1

    def run_now(self, *task_ids: str) -> None:
        """Run these tasks to their end before any poll asks for them (their results then come
        in one status answer)."""
        for task_id in task_ids:
            self._run(self.tasks[task_id])
        for task_id in task_ids:
            future = self.tasks[task_id].future
            assert future is not None
            future.exception(timeout=10)

    def _run(self, task: FakeTask) -> None:
        if task.future is None and task.endpoint_id not in self.stuck_endpoints:
            task.future = self._workers.submit(self._execute, task)

    def _execute(self, task: FakeTask) -> Any:
        function = self.serializer.deserialize(self.functions[task.function_id])
        args, kwargs = self.arguments(task.payload)
        return function(*args, **kwargs)

    def arguments(self, payload: str) -> tuple[Any, Any]:
        """(args, kwargs) of a submitted task, as a batch packs them."""
        args, kwargs = self.serializer.unpack_buffers(payload)
        return self.serializer.deserialize(args), self.serializer.deserialize(kwargs)

    def _batch_status(self, request: Any) -> Answer:
        if not self._authorized(request):
            return self._error(401, "UNAUTHORIZED", "bad token")
        self.batch_status_calls += 1
        if self.batch_status_fault is not None:
            status = self.batch_status_fault
            return self._error(status, "FAULT", f"injected {status}")
        results: dict[str, Any] = {}
        for task_id in orjson.loads(request.body)["task_ids"]:
            task = self.tasks.get(task_id)
            if task is None:
                continue
            with self._lock:
                task.polls += 1
                if task.polls > self.polls_before_start:
                    self._run(task)
            results[task_id] = self._task_document(task)
        return self._json(200, {"response": "batch", "results": results})

    def _task_document(self, task: FakeTask) -> dict[str, Any]:
        document: dict[str, Any] = {"task_id": task.task_id}
        if task.future is None or not task.future.done():
            document["status"] = "waiting-for-ep" if task.future is None else "running"
            return document
        document["completion_t"] = str(time.time())
        error = task.future.exception()
        if error is None:
            document["status"] = "success"
            document["result"] = self.serializer.serialize(task.future.result())
        else:
            document["status"] = "failed"
            document["exception"] = "".join(traceback.format_exception(error))
        return document

    def _status(self, request: Any) -> Answer:
        if not self._authorized(request):
            return self._error(401, "UNAUTHORIZED", "bad token")
        self.status_calls += 1
        endpoint_id = request.url.split("/v2/endpoints/")[1].split("/")[0]
        document = self.endpoints.get(endpoint_id)
        if document is None:
            return self._error(404, "ENDPOINT_NOT_FOUND", f"endpoint {endpoint_id} not found")
        return self._json(200, document)


@dataclass(frozen=True, slots=True)
class _Request:
    """What the handlers read of a request."""

    method: str
    url: str  # the path
    headers: Any  # case-insensitive
    body: str


def _handler(service: FakeComputeService) -> type[BaseHTTPRequestHandler]:
    routes = service.routes()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real service

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            path = self.path.split("?", 1)[0]
            for method, pattern, route in routes:
                if method == self.command and pattern.fullmatch(path):
                    status, headers, content = route(
                        _Request(self.command, path, self.headers, body)
                    )
                    break
            else:
                status, headers, content = 404, {}, b'{"code": "NOT_FOUND"}'
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def fake_compute_service() -> Iterator[FakeComputeService]:
    """Body of a fixture: the fake service, serving (and the SDKs sent to it) for the duration
    of the test."""
    service = FakeComputeService()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(service))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fake-compute", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", f"{url}/")
            patch.setenv("GLOBUS_SDK_SERVICE_URL_COMPUTE", url)
            yield service
    finally:
        service.close()
        server.shutdown()
        server.server_close()
