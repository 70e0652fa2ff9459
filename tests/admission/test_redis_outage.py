"""Redis down: the chosen behaviour (LIMITS_REDIS_FAILURE), never a 500. The Redis here is one
this test starts on a free port and stops; the shared one is never touched."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from scripts import processes
from scripts.processes import free_port
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    server = processes.start(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        tmp_path / "redis.log",
    )
    try:
        assert processes.wait_until(lambda: not processes.port_is_free(port), 10, process=server)
        yield f"redis://127.0.0.1:{port}/0", server
    finally:
        processes.stop(server)


@pytest.mark.parametrize("failure", ["open", "closed"])
def test_redis_down_is_the_chosen_behaviour_never_a_500(
    tmp_path: Path, own_redis: tuple[str, subprocess.Popen[bytes]], failure: str
) -> None:
    url, redis_server = own_redis
    files = CatalogFiles()
    files.cluster("alpha", operations=["chat/completions"])
    with FakeBackend(models=("limited-model",)) as backend:
        files.endpoint("alpha", "limited-model", backend.url)
        files.endpoints[-1]["fields"]["rpm_user"] = 100
        env = {
            "REDIS_URL": url,
            "LIMITS_REDIS_FAILURE": failure,
            "LIMITS_REDIS_PREFIX": f"outage-{uuid.uuid4().hex}:",
        }
        with GatewayServer(tmp_path, fixtures=files.write(tmp_path / "fixtures"), env=env) as gw:

            def ask() -> httpx2.Response:
                return httpx2.post(
                    f"{gw.url}/resource_server/alpha/vllm/v1/chat/completions",
                    json={
                        "model": "limited-model",
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                    headers={"Authorization": f"Bearer {gw.api_key}"},
                    timeout=20,
                )

            before = ask()
            assert before.status_code == 200
            assert before.headers["x-ratelimit-remaining-requests"] == "99"
            processes.stop(redis_server)

            during = [ask() for _ in range(5)]

            if failure == "open":
                assert [a.status_code for a in during] == [200] * 5
                assert all("x-ratelimit-limit-requests" not in a.headers for a in during)
                wait_until(lambda: "admitting without limits" in gw.log_text())
                assert gw.log_text().count("admitting without limits") == 1  # rate-limited
            else:
                assert [a.status_code for a in during] == [503] * 5
                assert during[0].json()["error"]["code"] == "limits_unavailable"
                assert during[0].headers["retry-after"] == "1"
            assert "Traceback" not in gw.log_text()
