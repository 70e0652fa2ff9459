"""Gateways with limits: two worker processes and a second host sharing Redis, or one process
with the in-process limiter; one fake model server behind them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer

# Model -> its endpoint's limits (0 = unlimited).
LIMITS: dict[str, dict[str, int]] = {
    "rpm-model": {"rpm_user": 10},
    "retry-model": {"rpm_user": 10},
    "tpm-model": {"tpm_user": 200},
    "cut-model": {"tpm_user": 5000, "max_concurrent_user": 1},
    "busy-model": {"max_concurrent_user": 2},
    "open-model": {},
    "shared-model": {"rpm_model": 1},
}


@dataclass
class Gateways:
    """The hosts a client may reach; every one shares the limits (Redis) or there is one."""

    hosts: list[GatewayServer] = field(default_factory=list)
    mode: str = "memory"

    @property
    def key(self) -> str:
        return self.hosts[0].api_key

    def url(self, index: int, model: str, operation: str = "chat/completions") -> str:
        host = self.hosts[index % len(self.hosts)]
        return f"{host.url}/resource_server/alpha/vllm/v1/{operation}"


@pytest.fixture(scope="package")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=tuple(LIMITS)) as server:
        yield server


@pytest.fixture(scope="package", params=["memory", "redis"])
def gateways(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[Gateways]:
    mode = str(request.param)
    redis_url = os.environ.get("REDIS_URL", "")
    if mode == "redis" and not redis_url:
        pytest.skip("REDIS_URL is not set (the CI's second run sets it)")
    tmp = tmp_path_factory.mktemp(f"limits-{mode}")
    files = CatalogFiles()
    files.cluster("alpha", operations=["chat/completions", "completions", "messages"])
    for model, limits in LIMITS.items():
        files.endpoint("alpha", model, backend.url, messages_api="translate")
        files.endpoints[-1]["fields"].update(limits)
    env = {
        "REDIS_URL": redis_url if mode == "redis" else "",
        # Keys of this run only: the shared Redis keeps other runs' buckets for a minute.
        "LIMITS_REDIS_PREFIX": f"test-limits:{uuid.uuid4().hex}:",
    }
    found = Gateways(mode=mode)
    with GatewayServer(
        tmp, fixtures=files.write(tmp / "fixtures"), env=env, workers=2 if mode == "redis" else 1
    ) as first:
        found.hosts.append(first)
        if mode == "memory":
            yield found
            return
        # A second host: its own server process, the same database and the same Redis.
        second_env = {**env, "DATABASE_URL": first.env["DATABASE_URL"]}
        (tmp / "second").mkdir()
        with GatewayServer(tmp / "second", env=second_env) as second:
            found.hosts.append(second)
            yield found
