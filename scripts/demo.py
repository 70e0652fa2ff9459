"""`make demo`: the gateway in front of a real small model (SmolLM2), on one machine, no services.

Starts (or reuses) the model server of `scripts/model_server.py` on the port the demo fixtures
name, prepares a SQLite database in the data directory (default ./var) with every fixture in
fixtures/demo/, starts the gateway with uvicorn, makes sure there is a demo API key (stored in
the data directory, mode 0600), shows a first answer and how to call the gateway, and runs until
Ctrl-C or SIGTERM, which stop what the demo started.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

from scripts import model_server, processes

ROOT = model_server.ROOT
DEMO_FIXTURES = ROOT / "fixtures" / "demo"
DIRECT_API_ENDPOINT = "resource_server_async.endpoints.direct_api.DirectAPIEndpoint"
PROMPT = "In one sentence, what is a supercomputer?"
# The staff account `make demo` signs in to the operator dashboard with (docs/dashboard.md).
DASHBOARD_USER = "demo-operator"


class Stop(Exception):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


class DemoError(Exception):
    """Something the person running the demo must fix; the message says what."""


@dataclass(frozen=True)
class Target:
    """Where the demo model lives, read from the demo fixtures (the one place that says it)."""

    cluster: str
    framework: str
    model: str
    api_url: str

    @property
    def port(self) -> int:
        return urlsplit(self.api_url).port or 80


def demo_target(fixtures: Path = DEMO_FIXTURES) -> Target:
    for path in sorted(fixtures.glob("*.json")):
        for row in json.loads(path.read_text()):
            fields = row.get("fields", {})
            if (
                row.get("model") == "resource_server_async.endpoint"
                and fields.get("endpoint_adapter") == DIRECT_API_ENDPOINT
                and fields.get("model") == model_server.MODEL_NAME
            ):
                return Target(
                    fields["cluster"],
                    fields["framework"],
                    fields["model"],
                    fields["config"]["api_url"].rstrip("/"),
                )
    raise DemoError(f"no DirectAPI endpoint for {model_server.MODEL_NAME} in {fixtures}")


def http(
    url: str, body: dict[str, Any] | None = None, key: str = "", timeout: float = 5.0
) -> tuple[int, Any]:
    """(status, parsed JSON body) of a GET, or a POST when `body` is given; status 0 = no answer."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def wait_until(ready: Callable[[], bool], what: str, timeout: float, child: Child) -> None:
    try:
        if processes.wait_until(ready, timeout, child.process, interval=0.2):
            return
    except processes.ExitedEarly as exc:
        raise DemoError(f"{what} exited with status {exc.returncode}; see {child.log}") from None
    raise DemoError(f"{what} did not start within {timeout:g} s; see {child.log}")


@dataclass
class Child:
    """A process the demo started, with its log file; stopped when the demo stops."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        processes.stop(self.process)


class Demo:
    def __init__(self, data_dir: Path, port: int, out: TextIO = sys.stdout) -> None:
        self.data_dir = data_dir
        self.port = port
        self.out = out
        self.logs = data_dir / "demo"
        self.key_file = data_dir / "demo_api_key"
        self.children: list[Child] = []
        self.target = demo_target()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # --- the gateway's environment and commands ---------------------------------------------

    def environment(self) -> dict[str, str]:
        # The embedded default: SQLite in the data directory, in-process cache, no services.
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "inference_gateway.settings",
                "GATEWAY_DEV_MODE": "true",
                "GATEWAY_DATA_DIR": str(self.data_dir),
                # Globus Compute endpoints among the demo fixtures run on this machine: the
                # local executor calls the model server over plain HTTP and streams back to
                # this gateway's side channel.
                "COMPUTE_EXECUTOR": "local",
                "INFERENCE_API_BASE_URL": "http://127.0.0.1:{api_port}",
                "STREAMING_SERVER_HOST": "127.0.0.1",
                "STREAMING_SERVER_PORT": str(self.port),
                "STREAMING_SERVER_PROTOCOL": "http",
            }
        )
        env.setdefault("LOG_LEVEL", "WARNING")
        return env

    def manage(self, *args: str) -> str:
        done = processes.manage(*args, env=self.environment(), check=False)
        if done.returncode != 0:
            raise DemoError(f"manage.py {args[0]} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Child:
        log = self.logs / f"{name}.log"
        # Logs of earlier runs are kept. Detached: Ctrl-C reaches the demo only, which stops
        # children in order.
        process = processes.start(command, log, env=env, cwd=ROOT, append=True, detached=True)
        child = Child(name, process, log)
        self.children.append(child)
        return child

    # --- steps ------------------------------------------------------------------------------

    def ensure_model_venv(self) -> None:
        if not model_server.is_installed():
            self.say("Installing the model server into .venv-model (the first time only)...")
            subprocess.run(["make", "model-venv"], cwd=ROOT, check=True)

    def ensure_model_server(self) -> bool:
        """Start SmolLM2, or reuse one already serving on its port; True if started here."""
        url, port = self.target.api_url, self.target.port
        if model_server.serves_model(url):
            self.say(f"Reusing the model server already running at {url}.")
            return False
        if not processes.port_is_free(port):
            raise DemoError(
                f"port {port} (the demo fixtures' api_url) is taken by something that is not "
                f"the {model_server.MODEL_NAME} server; stop it and run the demo again"
            )
        self.say(f"Starting the model server ({model_server.MODEL_NAME}) at {url}...")
        child = self.start("model-server", model_server.command(port), model_server.environment())
        wait_until(lambda: model_server.serves_model(url), "the model server", 180, child)
        return True

    def prepare_database(self) -> None:
        self.manage("migrate", "--no-input", "-v0")
        fixtures = [str(p) for p in sorted(DEMO_FIXTURES.glob("*.json"))]
        self.manage("loaddata", *fixtures)

    def start_gateway(self) -> None:
        if not processes.port_is_free(self.port):
            raise DemoError(
                f"port {self.port} is in use; stop what uses it or choose another with "
                f"DEMO_PORT=8001 make demo"
            )
        self.say(f"Starting the gateway at {self.url}...")
        child = self.start(
            "gateway",
            processes.gateway_command(self.port, *processes.SERVING_OPTIONS),
            self.environment(),
        )

        def healthy() -> bool:
            return http(f"{self.url}/resource_server/health")[0] == 200

        wait_until(healthy, "the gateway", 60, child)

    def start_batch_worker(self) -> None:
        """`manage.py batch_worker`: runs the batches created through the gateway."""
        self.say("Starting the batch worker...")
        self.start(
            "batch-worker",
            [sys.executable, str(ROOT / "manage.py"), "batch_worker"],
            self.environment(),
        )

    def api_key(self) -> str:
        """The stored demo key if the gateway still accepts it, else a new one, stored 0600."""
        if self.key_file.exists():
            key = self.key_file.read_text().strip()
            if key and http(f"{self.url}/resource_server/whoami", key=key)[0] == 200:
                return key
        key = self.manage("create_api_key", "--name", "demo", "--quiet").strip().splitlines()[-1]
        descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(key + "\n")
        os.chmod(self.key_file, 0o600)  # an older file keeps its mode through O_TRUNC
        return key

    def dashboard_password(self) -> str:
        """A new random password for the demo's staff account (created on first run): the
        operator dashboard's sign-in. The demo runs in development mode only."""
        password = secrets.token_urlsafe(16)
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User; "
            f"u, _ = User.objects.get_or_create(username={DASHBOARD_USER!r}); "
            f"u.is_staff = True; u.set_password({password!r}); u.save()",
        )
        return password

    def first_answer(self, key: str) -> str:
        status, body = http(
            f"{self.base_url}/chat/completions",
            {
                "model": self.target.model,
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": 40,
            },
            key=key,
            timeout=120,
        )
        if status != 200:
            raise DemoError(f"the first request through the gateway failed ({status}): {body}")
        return str(body["choices"][0]["message"]["content"]).strip()

    @property
    def base_url(self) -> str:
        return f"{self.url}/resource_server/{self.target.cluster}/{self.target.framework}/v1"

    def instructions(self, key: str, model_started: bool, password: str = "") -> str:
        model = self.target.model
        model_log = self.logs / "model-server.log"
        owner = f"log {model_log}" if model_started else "already running, left running"
        return f"""
Inference gateway demo
  model server  {self.target.api_url}  ({model} on llama-cpp-python; {owner})
  gateway       {self.url}  (log {self.logs / "gateway.log"})
  API key       {key}  (stored in {self.key_file})
  dashboard     {self.url}/dashboard/  (sign in as {DASHBOARD_USER}, password {password};
                a new password each run)

curl:
  curl {self.base_url}/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "{model}", "max_tokens": 50,
         "messages": [{{"role": "user", "content": "Hello!"}}]}}'

Python, openai client:
  from openai import OpenAI
  client = OpenAI(base_url="{self.base_url}", api_key="{key}")
  reply = client.chat.completions.create(
      model="{model}", messages=[{{"role": "user", "content": "Hello!"}}], max_tokens=50)
  print(reply.choices[0].message.content)

Python, anthropic client:
  import anthropic
  client = anthropic.Anthropic(base_url="{self.base_url.removesuffix("/v1")}", api_key="{key}")
  message = client.messages.create(
      model="{model}", max_tokens=50, messages=[{{"role": "user", "content": "Hello!"}}])
  print(message.content[0].text)

A batch (the batch worker runs it; output and error files as in OpenAI's Batch API):
  client = OpenAI(base_url="{self.url}/resource_server/v1", api_key="{key}")
  line = {{"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
          "body": {{"model": "{model}", "messages": [{{"role": "user", "content": "Hi"}}]}}}}
  upload = client.files.create(file=("q.jsonl", json.dumps(line).encode()), purpose="batch")
  batch = client.batches.create(input_file_id=upload.id,
      endpoint="/v1/chat/completions", completion_window="24h")
  # poll client.batches.retrieve(batch.id) until "completed", then
  # client.files.content(batch.output_file_id).text

The same model through the Globus Compute path (run here by the local executor):
  base_url="{self.url}/resource_server/local-compute/llama-cpp/v1"

Press Ctrl-C to stop the demo (and what it started).
"""

    # --- the whole run ----------------------------------------------------------------------

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self.ensure_model_venv()
            model_started = self.ensure_model_server()
            self.prepare_database()
            self.start_gateway()
            self.start_batch_worker()
            key = self.api_key()
            password = self.dashboard_password()
            self.say(f"\nAsked {self.target.model}: {PROMPT}")
            self.say(f"It answered: {self.first_answer(key)}")
            self.say(self.instructions(key, model_started, password))
            while True:
                for child in self.children:
                    if child.process.poll() is not None:
                        raise DemoError(
                            f"the {child.name} stopped (status {child.process.returncode}); "
                            f"see {child.log}"
                        )
                time.sleep(0.5)
        except (KeyboardInterrupt, Stop):
            self.say("\nStopping...")
            return 0
        except DemoError as exc:
            self.say(f"\ndemo: {exc}")
            return 1
        finally:
            # A second Ctrl-C must not leave children behind half-way through stopping them.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            # The gateway first, so that it does not serve errors while its model goes away.
            for child in reversed(self.children):
                child.stop()
            if self.children:
                self.say("Stopped: " + ", ".join(c.name for c in reversed(self.children)) + ".")


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def main() -> int:
    signal.signal(signal.SIGTERM, _raise_stop)
    # Ctrl-C raises KeyboardInterrupt even when started from a shell that ignores SIGINT for
    # background jobs (Python would inherit the "ignore").
    signal.signal(signal.SIGINT, signal.default_int_handler)
    data_dir = Path(os.environ.get("GATEWAY_DATA_DIR") or ROOT / "var").resolve()
    port = int(os.environ.get("DEMO_PORT") or 8000)
    return Demo(data_dir, port).run()


if __name__ == "__main__":
    sys.exit(main())
