"""Real servers for end-to-end tests: the gateway under uvicorn, in its own process and database."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from openai import OpenAI

from scripts import processes
from scripts.processes import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def scratch_database(tmp_path: Path) -> Iterator[str]:
    """A DATABASE_URL of a new, empty database of the kind the suite runs on; dropped after."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
        return
    import psycopg

    name = f"gateway_e2e_{uuid.uuid4().hex[:12]}"
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class GatewayServer:
    """The gateway as an operator runs it: migrate, loaddata, create_api_key, uvicorn."""

    tmp_path: Path
    fixtures: Sequence[Path | str] = ()
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    options: Sequence[str] = ()  # more uvicorn options
    server: str = "inference_gateway.serve"  # the module run (bench/traced_gateway.py: profiled)
    port: int = 0
    api_key: str = ""
    process: subprocess.Popen[bytes] | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "inference_gateway.settings",
                "GATEWAY_DEV_MODE": "1",
                "GATEWAY_DATA_DIR": str(self.tmp_path / "data"),
                "LOG_LEVEL": "WARNING",
                "CATALOG_REFRESH_SECONDS": "0.2",
            }
        )
        env.update(self.env)
        return env

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return processes.manage(*args, env=self.environment(), check=check)

    def create_api_key(self, name: str = "e2e", *extra: str) -> str:
        out = self.manage("create_api_key", "--name", name, "--quiet", *extra).stdout.strip()
        return out.splitlines()[-1].strip()

    def start(self) -> GatewayServer:
        self.env.setdefault(
            "DATABASE_URL", self._stack.enter_context(scratch_database(self.tmp_path))
        )
        self.manage("migrate", "--no-input", "-v0")
        if self.fixtures:
            self.manage("loaddata", *[str(f) for f in self.fixtures])
        self.api_key = self.create_api_key()
        self.port = self.port or free_port()
        self.process = processes.start(
            processes.gateway_command(
                self.port,
                "--workers",
                str(self.workers),
                *processes.SERVING_OPTIONS,
                *self.options,
                server=self.server,
            ),
            self.log,
            env=self.environment(),
            cwd=ROOT,
        )
        try:
            wait_for_http(f"{self.url}/resource_server/health", process=self.process)
        except Exception:
            self.stop()
            raise
        return self

    @property
    def log(self) -> Path:
        return self.tmp_path / f"gateway-{self.port}.log"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def openai_client(self, base_path: str = "/resource_server/alpha/vllm/v1") -> OpenAI:
        """The official client on `base_path`, with this gateway's key and no retries."""
        return OpenAI(
            base_url=f"{self.url}{base_path}", api_key=self.api_key, max_retries=0, timeout=20
        )

    def sse_events(self, path: str, body: dict[str, Any]) -> list[bytes]:
        """The SSE events the gateway sends for a POST of `body` to `path`, split on blank
        lines (raw bytes, so that a test sees exactly what a client would read)."""
        with httpx2.stream(
            "POST",
            f"{self.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=10,
        ) as answer:
            assert answer.status_code == 200
            raw = b"".join(answer.iter_bytes())
        return [event for event in raw.split(b"\n\n") if event]

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)
        self._stack.close()

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
