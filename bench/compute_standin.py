"""A stand-in for Globus Auth and the Globus Compute web service, as a real HTTP server.

Run it in its own process (`python -m bench.compute_standin --port P --endpoint UUID ...`) and
point the gateway at it with GLOBUS_SDK_SERVICE_URL_AUTH and GLOBUS_SDK_SERVICE_URL_COMPUTE:
the real globus-sdk and globus-compute-sdk code of resource_server_async/compute/globus.py then
talks to it across processes. It serves the routes that code and the SDK's Executor call (token,
function registration, submit, batch status, task, endpoint status), answers each after
`--latency` seconds (the service's own time), and really executes each submitted function in a
worker thread (as an endpoint's worker would), holding its result back for `--result-delay`.
The project's functions are registered at start under their local UUIDs, so a catalog needs no
registration step; `POST /v3/functions` registers others as the service does.

Each token it issues is new, and any issued token not expired is accepted. For tests,
`/standin/...` routes change it while it runs: faults (the next calls of a route answer an
error status, or only after a delay), and tell what the last call of a route sent (headers and
body).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
import traceback
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn
from globus_compute_sdk.serialize import ComputeSerializer
from globus_compute_sdk.serialize.concretes import PureSourceTextInspect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resource_server_async.compute.functions import PROJECT_FUNCTIONS

CLIENT_ID = "6d2d3a1e-5f3a-4d58-9f3b-6c1c8b0a1f00"
CLIENT_SECRET = "standin-client-secret"
TOKEN = "standin-compute-token"
# The relay probe (bench/compute_probe.py), registered at start like the project's functions.
PROBE_FUNCTION = "a9d3c2b1-0e4f-4a6b-8c7d-1f2e3d4c5b6a"
PROBE_CHUNKS = 20  # bench/compute_probe.py CHUNKS
PROBE_SOURCE = (
    "def relay_probe(parameters):\n"
    "    from bench.compute_probe import relay_probe as run\n"
    "    return run(parameters)\n"
)
FUNCX_SCOPE = "https://auth.globus.org/scopes/facd7ccc-c5f4-42aa-916b-a0e270e2c2a9/all"


@dataclass
class Task:
    task_id: str
    function_id: str
    payload: str
    submitted: float
    future: Future[Any] | None = None


@dataclass
class StandinState:
    """What the service knows: functions, endpoints, tasks; and how slow it is."""

    latency: float
    result_delay: float
    workers: int
    functions: dict[str, str] = field(default_factory=dict)  # uuid -> serialized code
    endpoints: set[str] = field(default_factory=set)
    tasks: dict[str, Task] = field(default_factory=dict)
    serializer: ComputeSerializer = field(default_factory=ComputeSerializer)
    counts: dict[str, int] = field(default_factory=dict)
    # While set, finished tasks still answer "running" (requests held in flight on purpose).
    holding: bool = False
    token_lifetime: int = 172800
    tokens: dict[str, float] = field(default_factory=dict)  # issued token -> expiry (time.time)
    # route -> the next calls' faults, in order: (status or 0 for none, delay in s)
    faults: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)  # route -> headers, body
    _pool: ThreadPoolExecutor | None = None

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="standin-worker")
        for function in PROJECT_FUNCTIONS:
            self.functions[function.local_uuid] = (
                PureSourceTextInspect.identifier + f"{function.entry_point}:{function.source()}"
            )
        self.functions[PROBE_FUNCTION] = PureSourceTextInspect.identifier + (
            f"relay_probe:{PROBE_SOURCE}"
        )

    def count(self, route: str) -> None:
        self.counts[route] = self.counts.get(route, 0) + 1

    def issue_token(self) -> str:
        token = TOKEN if not self.tokens else f"{TOKEN}-{len(self.tokens) + 1}"
        self.tokens[token] = time.time() + self.token_lifetime
        return token

    def accepts(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        return scheme == "Bearer" and self.tokens.get(token, 0.0) > time.time()

    def run(self, task: Task) -> None:
        assert self._pool is not None
        task.future = self._pool.submit(self._execute, task)

    def _execute(self, task: Task) -> Any:
        function = self.serializer.deserialize(self.functions[task.function_id])
        args, kwargs = self.serializer.unpack_buffers(task.payload)
        return function(*self.serializer.deserialize(args), **self.serializer.deserialize(kwargs))

    def document(self, task: Task) -> dict[str, Any]:
        """The task as /v2/batch_status and /v2/tasks describe it."""
        doc: dict[str, Any] = {"task_id": task.task_id}
        future = task.future
        ready = future is not None and future.done()
        early = time.monotonic() < task.submitted + self.result_delay
        if not ready or early or self.holding:
            doc["status"] = "running" if future is not None else "waiting-for-ep"
            doc["pending"] = True
            return doc
        assert future is not None
        doc["pending"] = False
        doc["completion_t"] = str(time.time())
        error = future.exception()
        if error is None:
            doc["status"] = "success"
            doc["result"] = self.serializer.serialize(future.result())
        else:
            doc["status"] = "failed"
            doc["exception"] = "".join(traceback.format_exception(error))
        # The service forgets a task once its result has been fetched.
        self.tasks.pop(task.task_id, None)
        return doc


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json({"code": code, "message": message, "http_status_code": status}, status)


def build_app(state: StandinState) -> Starlette:
    async def slow(request: Request, route: str) -> Response | None:
        state.count(route)
        state.last[route] = {"headers": dict(request.headers), "body": await request.body()}
        if state.latency:
            await asyncio.sleep(state.latency)
        if faults := state.faults.get(route):
            status, delay = faults.pop(0)
            await asyncio.sleep(delay)
            if status:
                return _error(status, "INJECTED_FAULT", f"injected {status} on {route}")
        if route != "token" and not state.accepts(request.headers.get("authorization")):
            return _error(401, "UNAUTHORIZED", "bad or missing token")
        return None

    async def token(request: Request) -> Response:
        await slow(request, "token")
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}" or (
            form.get("grant_type") != "client_credentials"
        ):
            return _json({"error": "invalid_client"}, 401)
        return _json(
            {
                "access_token": state.issue_token(),
                "scope": FUNCX_SCOPE,
                "expires_in": state.token_lifetime,
                "token_type": "Bearer",
                "resource_server": "funcx_service",
                "other_tokens": [],
            }
        )

    async def register(request: Request) -> Response:
        if refused := await slow(request, "register"):
            return refused
        body = orjson.loads(await request.body())
        code = body.get("function_code")
        if not isinstance(code, str) or not code:
            return _error(400, "BAD_REQUEST", "function_code is required")
        if body.get("serialized", True):
            code = state.serializer.unpack_buffers(code)[0]
        else:
            code = PureSourceTextInspect.identifier + f"{body.get('function_name')}:{code}"
        function_id = str(uuid.uuid4())
        state.functions[function_id] = code
        return _json({"function_uuid": function_id})

    async def submit(request: Request) -> Response:
        if refused := await slow(request, "submit"):
            return refused
        endpoint_id = request.path_params["endpoint_id"]
        if endpoint_id not in state.endpoints:
            return _error(404, "ENDPOINT_NOT_FOUND", f"endpoint {endpoint_id} not found")
        body = orjson.loads(await request.body())
        tasks: dict[str, list[str]] = {}
        for function_id, payloads in body.get("tasks", {}).items():
            if function_id not in state.functions:
                return _error(404, "FUNCTION_NOT_FOUND", f"function {function_id} not found")
            for payload in payloads:
                task = Task(str(uuid.uuid4()), function_id, payload, time.monotonic())
                state.tasks[task.task_id] = task
                state.run(task)
                tasks.setdefault(function_id, []).append(task.task_id)
        return _json(
            {
                "request_id": str(uuid.uuid4()),
                "task_group_id": body.get("task_group_id") or str(uuid.uuid4()),
                "endpoint_id": endpoint_id,
                "tasks": tasks,
            }
        )

    async def batch_status(request: Request) -> Response:
        if refused := await slow(request, "batch_status"):
            return refused
        results: dict[str, Any] = {}
        for task_id in orjson.loads(await request.body()).get("task_ids", []):
            task = state.tasks.get(task_id)
            if task is not None:
                results[task_id] = state.document(task)
        return _json({"response": "batch", "results": results})

    async def task_status(request: Request) -> Response:
        if refused := await slow(request, "task"):
            return refused
        task = state.tasks.get(request.path_params["task_id"])
        if task is None:
            return _error(404, "TASK_NOT_FOUND", "task not found")
        return _json(state.document(task))

    async def endpoint_status(request: Request) -> Response:
        if refused := await slow(request, "endpoint_status"):
            return refused
        endpoint_id = request.path_params["endpoint_id"]
        if endpoint_id not in state.endpoints:
            return _error(404, "ENDPOINT_NOT_FOUND", f"endpoint {endpoint_id} not found")
        workers = state.workers
        return _json(
            {
                "status": "online",
                "details": {
                    "total_workers": workers,
                    "idle_workers": workers,
                    "pending_tasks": 0,
                    "outstanding_tasks": len(state.tasks),
                    "managers": 1,
                },
            }
        )

    async def health(request: Request) -> Response:
        return _json({"ok": True, "counts": state.counts, "tasks": len(state.tasks)})

    async def hold(request: Request) -> Response:
        state.holding = request.url.path.endswith("/hold")
        return _json({"holding": state.holding})

    async def fault(request: Request) -> Response:
        """{"route": "submit", "status": 503, "delay": 0, "count": 1}: the route's next calls."""
        body = orjson.loads(await request.body())
        planned = (int(body.get("status", 0)), float(body.get("delay", 0.0)))
        state.faults.setdefault(body["route"], []).extend([planned] * int(body.get("count", 1)))
        return _json({"faults": state.faults})

    async def last(request: Request) -> Response:
        sent = state.last.get(request.path_params["route"])
        if sent is None:
            return _error(404, "NOT_CALLED", "that route was not called")
        return _json({"headers": sent["headers"], "body": sent["body"].decode()})

    return Starlette(
        routes=[
            Route("/v2/oauth2/token", token, methods=["POST"]),
            Route("/v3/functions", register, methods=["POST"]),
            Route("/v2/functions", register, methods=["POST"]),
            Route("/v3/endpoints/{endpoint_id}/submit", submit, methods=["POST"]),
            Route("/v2/batch_status", batch_status, methods=["POST"]),
            Route("/v2/tasks/{task_id}", task_status, methods=["GET"]),
            Route("/v2/endpoints/{endpoint_id}/status", endpoint_status, methods=["GET"]),
            Route("/standin/health", health, methods=["GET"]),
            Route("/standin/hold", hold, methods=["POST"]),
            Route("/standin/release", hold, methods=["POST"]),
            Route("/standin/fault", fault, methods=["POST"]),
            Route("/standin/last/{route}", last, methods=["GET"]),
        ]
    )


def gateway_env(url: str) -> dict[str, str]:
    """Settings that send the gateway's Globus traffic to the stand-in at `url`."""
    return {
        "COMPUTE_EXECUTOR": "globus",
        "SERVICE_ACCOUNT_ID": CLIENT_ID,
        "SERVICE_ACCOUNT_SECRET": CLIENT_SECRET,
        "GLOBUS_SDK_SERVICE_URL_AUTH": f"{url}/",
        "GLOBUS_SDK_SERVICE_URL_COMPUTE": url,
    }


def command(
    port: int,
    endpoints: list[str],
    latency: float = 0.0,
    result_delay: float = 0.0,
    workers: int = 64,
) -> list[str]:
    """The command line that starts a stand-in (run it with scripts.processes.start)."""
    import sys

    args = [sys.executable, "-m", "bench.compute_standin", "--port", str(port)]
    args += ["--latency", str(latency), "--result-delay", str(result_delay)]
    args += ["--workers", str(workers)]
    for endpoint in endpoints:
        args += ["--endpoint", endpoint]
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint", action="append", default=[], help="an online endpoint")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per service call")
    parser.add_argument("--result-delay", type=float, default=0.0, help="seconds before results")
    parser.add_argument("--workers", type=int, default=64, help="threads executing tasks")
    options = parser.parse_args()
    state = StandinState(options.latency, options.result_delay, options.workers)
    state.endpoints.update(options.endpoint)
    uvicorn.run(build_app(state), host="127.0.0.1", port=options.port, log_level="warning")


if __name__ == "__main__":
    main()
