"""A fake model server that counts the lines it answered, a real gateway, and batch workers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from openai import OpenAI

from scripts import processes
from tests.fake_backend import FakeBackend, Faults
from tests.inference.catalog_files import CatalogFiles
from tests.servers import ROOT, GatewayServer

# Small limits, so that tests can measure them (the quota is per principal).
LIMITS = {
    "BATCH_FILE_MAX_BYTES": "40000",
    "BATCH_FILE_MAX_LINES": "200",
    "BATCH_QUOTA_BYTES": "50000",
    "MAX_BATCHES_PER_USER": "3",
}


@dataclass
class CountingBackend(FakeBackend):
    """Counts, per fault id (a line's custom_id), the calls it answered after their delay."""

    answered: Counter[str] = field(default_factory=Counter)

    async def _delay(self, request: web.Request, faults: Faults) -> bool:
        answered = await super()._delay(request, faults)
        if answered and faults.id:
            self.answered[faults.id] += 1
        return answered


@pytest.fixture(scope="package")
def backend() -> Iterator[CountingBackend]:
    with CountingBackend(models=("fake-model",)) as server:
        yield server


@pytest.fixture(scope="package")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("batches-gateway")
    files = CatalogFiles()
    files.cluster("alpha", operations=["chat/completions", "completions", "embeddings"])
    files.endpoint("alpha", "fake-model", backend.url)
    env = {
        **LIMITS,
        "BATCH_POLL_SECONDS": "0.05",
        "BATCH_CLAIM_SECONDS": "1.5",
        "BATCH_CONCURRENCY_PER_ENDPOINT": "4",
    }
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


def client(gateway: GatewayServer, api_key: str | None = None) -> OpenAI:
    """The official client on the federated routes."""
    return OpenAI(
        base_url=f"{gateway.url}/resource_server/v1",
        api_key=api_key or gateway.api_key,
        max_retries=0,
        timeout=20,
    )


def chat_line(custom_id: str, text: str = "hello", **fake: object) -> dict:
    body: dict = {"model": "fake-model", "messages": [{"role": "user", "content": text}]}
    if fake:
        body["fake"] = fake
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[dict]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def read_jsonl(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


@dataclass
class Workers:
    """`manage.py batch_worker` processes on the gateway's database, stopped at the end."""

    gateway: GatewayServer
    tmp_path: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"worker-{len(self.started)}.log"
        process = processes.start(
            [sys.executable, str(ROOT / "manage.py"), "batch_worker"],
            log,
            env=self.gateway.environment(),
            cwd=ROOT,
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            processes.stop(process)


@pytest.fixture
def workers(gateway: GatewayServer, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(gateway, tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def worker(workers: Workers) -> subprocess.Popen[bytes]:
    return workers.start()


@pytest.fixture
def new_key(gateway: GatewayServer) -> Callable[[str], str]:
    """A key of a principal of its own (quotas and visibility are per principal)."""
    return lambda name: gateway.create_api_key(name)


def stored_lines(database_url: str, batch_id: str) -> int:
    """Lines of a batch whose outcome the worker has stored (read straight from its database)."""
    sql = "SELECT COUNT(*) FROM resource_server_async_batchline WHERE batch_id = ?"
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(sql, (batch_id,)).fetchone()[0])
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql.replace("?", "%s"), (batch_id,)).fetchone()
        return int(row[0]) if row else 0
