"""One fake model server and one gateway whose catalog describes its models: capabilities,
aliases, a renamed model behind LEGACY_ENDPOINT_SLUG_MAPPING, one model on two clusters.

  alpha (vllm)  shared-model (capabilities, alias shared-alias), renamed-model (was old-model),
                alpha-only (no capabilities)
  beta  (vllm)  shared-model (alias beta-name)
  gamma (vllm)  shared-model on a server that is not there (its live state: offline)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer, free_port

CAPABILITIES = {
    "context_window_tokens": 131072,
    "max_output_tokens": 8192,
    "input_modalities": ["text", "image"],
    "tool_calling": True,
    "reasoning": False,
    "streaming": True,
    "api_protocols": ["openai", "anthropic"],
}
LEGACY = {"alpha-vllm-old-model": "alpha-vllm-renamed-model"}


@pytest.fixture(scope="package")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("shared-model",)) as server:
        yield server


@pytest.fixture(scope="package")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[GatewayServer]:
    files = CatalogFiles()
    files.cluster("alpha")
    files.cluster("beta")
    files.endpoint(
        "alpha", "shared-model", backend.url, capabilities=CAPABILITIES, aliases=["shared-alias"]
    )
    files.endpoint("alpha", "renamed-model", backend.url)
    files.endpoint("alpha", "alpha-only", backend.url)
    files.endpoint("beta", "shared-model", backend.url, aliases=["beta-name"])
    files.cluster("gamma")
    files.endpoint("gamma", "shared-model", f"http://127.0.0.1:{free_port()}")
    tmp = tmp_path_factory.mktemp("catalog-routes")
    env = {"LEGACY_ENDPOINT_SLUG_MAPPING": json.dumps(LEGACY)}
    with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as server:
        yield server
