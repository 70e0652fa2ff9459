"""fixtures/demo/local_compute.json: a GlobusComputeEndpoint served by the local executor.

Checked like any fixture; with the real SmolLM2 server (when installed), answered end to end
through the local executor, the project's inference function and the side channel.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import openai
import orjson
import pytest
from django.core.management import call_command
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.compute.catalog import local_executor_env
from tests.model_server import MODEL_NAME, ModelServer, needs_model_server
from tests.servers import GatewayServer, free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "demo" / "local_compute.json"


def _check(*paths: Path) -> str:
    out = io.StringIO()
    call_command("check_fixtures", *[str(path) for path in paths], stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_demo_fixture_is_clean_for_the_local_executor(settings: SettingsWrapper) -> None:
    settings.COMPUTE_EXECUTOR = "local"

    assert "1 file(s) checked: 0 error(s), 0 warning(s)" in _check(DEMO)


@pytest.mark.django_db
def test_local_executor_warns_about_functions_it_cannot_run(settings: SettingsWrapper) -> None:
    settings.COMPUTE_EXECUTOR = "local"

    out = _check(ROOT / "fixtures/clusters.json", ROOT / "fixtures/endpoints.json")

    assert (
        "endpoint 'your-cluster-api-your-model-70b'): function "
        "your-backend-globus-compute-function-uuid has no local implementation "
        "(COMPUTE_EXECUTOR=local): map it to a dotted path in LOCAL_COMPUTE_FUNCTIONS"
    ) in out


@pytest.fixture(scope="module")
def demo_gateway(
    tmp_path_factory: pytest.TempPathFactory, smollm2: ModelServer
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("demo-compute")
    rows = orjson.loads(DEMO.read_bytes())
    rows[1]["fields"]["config"]["api_port"] = smollm2.port  # the demo's 8081, here a free port
    fixture = tmp / "demo_compute.json"
    fixture.write_bytes(orjson.dumps(rows))
    port = free_port()
    env = local_executor_env(port)
    with GatewayServer(tmp, fixtures=[fixture], env=env, port=port) as server:
        yield server


@pytest.mark.e2e
@pytest.mark.model
@needs_model_server
def test_smollm2_through_the_local_executor(demo_gateway: GatewayServer) -> None:
    client = openai.OpenAI(
        base_url=f"{demo_gateway.url}/resource_server/local-compute/llama-cpp/v1",
        api_key=demo_gateway.api_key,
        max_retries=0,
        timeout=120,
    )
    messages = [{"role": "user", "content": "Say hello."}]

    answer = client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=8)
    stream = client.chat.completions.create(
        model=MODEL_NAME, messages=messages, max_tokens=8, stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]

    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    assert "".join(pieces).strip()
