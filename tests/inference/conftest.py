"""One fake model server (two: one requires a key) and one real gateway for the whole package.

The catalog covers every case the tests need, so the gateway starts once:

  alpha (vllm, all four operations)  fake-model, Mixed-Case/Model-1.0, keyed-model (key from
        env), unset-key-model (its key variable is unset), dead-model (nothing listens),
        slow-model (0.5 s timeout), v1-suffix-model (api_url ends in /v1/),
        restricted-model (example.org only), failover-model (dead server)
  beta  (vllm, chat/completions only) fake-model, beta-only-model, failover-model (alive)
  closed (under maintenance)          closed-model
  unannounced (in the notices with an empty message)  unannounced-model
  metis (MetisCluster, status page on the fake)       live-model, stopped-model, unlisted-model
  statusful (DirectAPICluster with status_url)        statusful-model
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator

import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import METIS_CLUSTER, METIS_ENDPOINT, CatalogFiles
from tests.servers import GatewayServer, free_port

UPSTREAM_KEY = "sk-upstream-" + secrets.token_hex(12)
UPSTREAM_KEY_VAR = "TEST_FAKE_UPSTREAM_KEY"
UNSET_KEY_VAR = "TEST_KEY_VARIABLE_THAT_IS_NOT_SET"
MAINTENANCE_NOTICE = "Cluster 'closed' is down for a scheduled upgrade until Monday 08:00."
BODY_LIMIT = 256 * 1024


@pytest.fixture(scope="package")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("fake-model",)) as server:
        yield server


@pytest.fixture(scope="package")
def keyed_backend() -> Iterator[FakeBackend]:
    with FakeBackend(api_key=UPSTREAM_KEY, models=("keyed-model",)) as server:
        yield server


def build_catalog(backend: FakeBackend, keyed: FakeBackend, dead_url: str) -> CatalogFiles:
    files = CatalogFiles()
    files.cluster("alpha")
    files.cluster("beta", operations=["chat/completions"])
    files.cluster("closed")
    files.cluster("unannounced")
    files.cluster(
        "metis",
        frameworks=["api"],
        adapter=METIS_CLUSTER,
        config={"status_url": f"{backend.url}/status", "api_request_timeout": 2},
    )
    files.cluster("statusful", config={"status_url": f"{backend.url}/status"})

    files.endpoint("alpha", "fake-model", backend.url)
    files.endpoint("alpha", "Mixed-Case/Model-1.0", backend.url)
    files.endpoint("alpha", "keyed-model", keyed.url, api_key_env_name=UPSTREAM_KEY_VAR)
    files.endpoint("alpha", "unset-key-model", keyed.url, api_key_env_name=UNSET_KEY_VAR)
    files.endpoint("alpha", "dead-model", dead_url)
    files.endpoint("alpha", "slow-model", backend.url, api_request_timeout=0.5)
    files.endpoint("alpha", "v1-suffix-model", f"{backend.url}/v1/")
    files.endpoint("alpha", "restricted-model", backend.url, allowed_domains=["example.org"])
    files.endpoint("alpha", "failover-model", dead_url)
    files.endpoint("beta", "fake-model", backend.url)
    files.endpoint("beta", "beta-only-model", backend.url)
    files.endpoint("beta", "failover-model", backend.url)
    files.endpoint("closed", "closed-model", backend.url)
    files.endpoint("unannounced", "unannounced-model", backend.url)
    for model in ("live-model", "stopped-model", "unlisted-model"):
        files.endpoint("metis", model, backend.url, framework="api", adapter=METIS_ENDPOINT)
    files.endpoint("statusful", "statusful-model", backend.url)
    return files


METIS_STATUS = {
    "metis-1": {"status": "Live", "model": "live-model", "description": "serving"},
    "metis-2": {"status": "Stopped", "model": "stopped-model", "description": "parked"},
    "metis-3": {"status": "Live", "model": "other", "experts": ["statusful-model"]},
}


@pytest.fixture(scope="package")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend, keyed_backend: FakeBackend
) -> Iterator[GatewayServer]:
    backend.status_document.clear()
    # Copies: tests change entries of the served document, never the constant they restore from.
    backend.status_document.update({key: dict(value) for key, value in METIS_STATUS.items()})
    tmp = tmp_path_factory.mktemp("inference-gateway")
    files = build_catalog(backend, keyed_backend, f"http://127.0.0.1:{free_port()}")
    env = {
        UPSTREAM_KEY_VAR: UPSTREAM_KEY,
        "MAINTENANCE_ERROR_NOTICES": json.dumps({"closed": MAINTENANCE_NOTICE, "unannounced": ""}),
        "MAX_REQUEST_BODY_BYTES": str(BODY_LIMIT),
        # Tests change the status page between requests; read it every time.
        "MODEL_STATUS_CACHE_SECONDS": "0",
        "MODEL_STATUS_STALE_SECONDS": "0",
        "LOG_LEVEL": "INFO",
    }
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server


@pytest.fixture(scope="package")
def partner_key(gateway: GatewayServer) -> str:
    """A key counted as domain example.org: it may use restricted-model."""
    return gateway.create_api_key("partner", "--domain", "example.org")


ClientFactory = Callable[..., OpenAI]


@pytest.fixture(scope="package")
def make_client(gateway: GatewayServer) -> ClientFactory:
    def make(
        cluster: str | None = "alpha",
        framework: str = "vllm",
        key: str | None = None,
        timeout: float = 20.0,
    ) -> OpenAI:
        prefix = f"{cluster}/{framework}/" if cluster else ""
        return OpenAI(
            base_url=f"{gateway.url}/resource_server/{prefix}v1",
            api_key=key or gateway.api_key,
            max_retries=0,
            timeout=timeout,
        )

    return make


@pytest.fixture(scope="package")
def client(make_client: ClientFactory) -> OpenAI:
    return make_client()
