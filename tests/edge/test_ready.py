"""GET /resource_server/ready: 200 while the database, Redis (when configured) and the catalog are
usable, 503 naming what is not; /health stays free of dependencies. A dependency is made
unreachable by a wrong port, never by stopping the shared services."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from scripts import processes
from tests.servers import ROOT, GatewayServer, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def ready(url: str) -> httpx2.Response:
    return httpx2.get(f"{url}/resource_server/ready", timeout=10)


def test_ready_when_everything_answers(gateway: GatewayServer) -> None:
    answer = ready(gateway.url)

    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["catalog"] == "ok"
    assert body["checks"]["redis"] in ("ok", "not configured")


def _unreachable_database(tmp_path: Path) -> str:
    """A DATABASE_URL of the suite's kind that nothing answers."""
    if GatewayServer(tmp_path).environment().get("DATABASE_URL", "").startswith("postgres"):
        return f"postgres://postgres@127.0.0.1:{free_port()}/gateway"
    return f"sqlite:///{tmp_path / 'no-such-directory' / 'gateway.sqlite3'}"


@contextlib.contextmanager
def bare_gateway(tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """The gateway started as is, without migrate or loaddata (its database may be down)."""
    server = GatewayServer(tmp_path, env=env)
    port = free_port()
    process = processes.start(
        processes.gateway_command(port, *processes.SERVING_OPTIONS),
        tmp_path / "gateway.log",
        env=server.environment(),
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, (tmp_path / "gateway.log").read_text()
        try:
            ready(url)
        except httpx2.TransportError:
            return False
        return True

    try:
        wait_until(answers, timeout=30)
        yield url
    finally:
        processes.stop(process)


def test_a_database_that_does_not_answer_is_named(tmp_path: Path) -> None:
    with bare_gateway(tmp_path, {"DATABASE_URL": _unreachable_database(tmp_path)}) as url:
        answer = ready(url)
        health = httpx2.get(f"{url}/resource_server/health")

    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not ready"
    assert body["detail"] == "not usable: database, catalog"
    assert body["checks"]["database"] != "ok"
    assert body["checks"]["catalog"] == "not loaded yet"
    assert answer.headers["retry-after"] == "5"
    # /health checks no dependency; it says only that the catalog never loaded.
    assert health.status_code == 503


def test_a_redis_that_does_not_answer_is_named(tmp_path: Path, gateway: GatewayServer) -> None:
    env = {
        "DATABASE_URL": gateway.env["DATABASE_URL"],
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/5",
    }
    with bare_gateway(tmp_path, env) as url:
        wait_until(lambda: ready(url).json()["checks"]["catalog"] == "ok")
        answer = ready(url)
        health = httpx2.get(f"{url}/resource_server/health")

    assert answer.status_code == 503
    body = answer.json()
    assert body["detail"] == "not usable: redis"
    assert body["checks"]["database"] == "ok"
    assert "ConnectionError" in body["checks"]["redis"]
    assert health.status_code == 200, "health stays free of dependencies"
