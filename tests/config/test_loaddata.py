"""loaddata of the seed's examples and of broken rows: it works, or says what is wrong."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from resource_server_async.models import Cluster, Endpoint
from tests.config.helpers import cluster_row, endpoint_row, write_fixture

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def load(*paths: Path | str) -> str:
    err = io.StringIO()
    call_command("loaddata", *[str(p) for p in paths], stdout=io.StringIO(), stderr=err)
    return err.getvalue()


def test_project_fixtures_load() -> None:
    load(ROOT / "fixtures/clusters.json", ROOT / "fixtures/endpoints.json")
    assert set(Cluster.objects.values_list("cluster_name", flat=True)) == {"your-cluster", "local"}
    seed = Endpoint.objects.get(endpoint_slug="your-cluster-api-your-model-70b")
    assert seed.config == {
        "api_port": 8000,
        "endpoint_uuid": "your-backend-globus-compute-endpoint-uuid",
        "function_uuid": "your-backend-globus-compute-function-uuid",
    }
    assert seed.allowed_globus_groups == [] and seed.tpm_model == 0


def test_seed_endpoint_loads_exactly_as_the_seed_shows_it() -> None:
    warnings = load(DATA / "seed_endpoint.json")
    endpoint = Endpoint.objects.get()
    assert endpoint.model == "Your-Model-70B" and endpoint.framework == "api"
    # Its cluster is not loaded: reported, not fatal (operators load the two files separately).
    assert "cluster 'your-cluster' does not exist" in warnings


def test_seed_cluster_loads_once_its_trailing_comma_is_removed(tmp_path: Path) -> None:
    text = (DATA / "seed_cluster_verbatim.json").read_text()
    fixed = tmp_path / "clusters.json"
    fixed.write_text(text.replace('"embeddings",\n', '"embeddings"\n'))
    load(fixed)
    cluster = Cluster.objects.get()
    assert cluster.openai_endpoints == ["chat/completions", "completions", "embeddings"]
    assert (
        cluster.config["qstat_function_uuid"] == "your-backend-globus-compute-qstat-function-uuid"
    )


def test_python_literal_config_string_is_converted(tmp_path: Path) -> None:
    row = endpoint_row(config="{'api_port': 8000, 'endpoint_uuid': 'e', 'function_uuid': 'f'}")
    load(
        write_fixture(tmp_path / "c.json", [cluster_row()]),
        write_fixture(tmp_path / "e.json", [row]),
    )
    endpoint = Endpoint.objects.get()
    assert endpoint.config == {"api_port": 8000, "endpoint_uuid": "e", "function_uuid": "f"}
    # Stored as a real JSON object, not as a string.
    with connection.cursor() as cursor:
        cursor.execute("SELECT config FROM resource_server_async_endpoint")
        stored = cursor.fetchone()[0]
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert stored == {"api_port": 8000, "endpoint_uuid": "e", "function_uuid": "f"}


def test_literal_string_already_in_the_database_reads_as_an_object() -> None:
    load(ROOT / "fixtures/clusters.json", ROOT / "fixtures/endpoints.json")
    # An older deployment's dump stored the config as a JSON string holding a Python literal.
    literal = json.dumps("{'api_port': 9000, 'endpoint_uuid': 'a', 'function_uuid': 'b'}")
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE resource_server_async_endpoint SET config = %s{cast}", [literal])
    endpoint = Endpoint.objects.get(endpoint_slug="your-cluster-api-your-model-70b")
    assert endpoint.config == {"api_port": 9000, "endpoint_uuid": "a", "function_uuid": "b"}


def test_wrong_slug_names_the_expected_slug_and_writes_nothing(tmp_path: Path) -> None:
    rows = [endpoint_row(endpoint_slug="sophia-llama")]
    with pytest.raises(CommandError) as caught:
        load(
            write_fixture(tmp_path / "c.json", [cluster_row()]),
            write_fixture(tmp_path / "e.json", rows),
        )
    message = str(caught.value)
    assert "'sophia-llama' does not follow the slug rule" in message
    assert "expected 'sophia-vllm-meta-llamameta-llama-31-70b-instruct'" in message
    assert "e.json" in message
    assert not Cluster.objects.exists() and not Endpoint.objects.exists()


def test_unknown_adapter_path(tmp_path: Path) -> None:
    rows = [endpoint_row(endpoint_adapter="resource_server_async.endpoints.nowhere.Missing")]
    with pytest.raises(CommandError) as caught:
        load(
            write_fixture(tmp_path / "c.json", [cluster_row()]),
            write_fixture(tmp_path / "e.json", rows),
        )
    assert "cannot import module 'resource_server_async.endpoints.nowhere'" in str(caught.value)
    assert not Endpoint.objects.exists()


def test_adapter_of_the_wrong_kind(tmp_path: Path) -> None:
    rows = [
        endpoint_row(
            endpoint_adapter="resource_server_async.clusters.globus_compute.GlobusComputeCluster"
        )
    ]
    with pytest.raises(CommandError) as caught:
        load(write_fixture(tmp_path / "e.json", rows))
    assert "is not a subclass of resource_server_async.endpoints.base.BaseEndpoint" in str(
        caught.value
    )


def test_missing_api_port_names_row_key_and_expectation(tmp_path: Path) -> None:
    rows = [endpoint_row(config={"endpoint_uuid": "e", "function_uuid": "f"})]
    with pytest.raises(CommandError) as caught:
        load(
            write_fixture(tmp_path / "c.json", [cluster_row()]),
            write_fixture(tmp_path / "e.json", rows),
        )
    message = str(caught.value)
    assert "endpoint 'sophia-vllm-meta-llamameta-llama-31-70b-instruct'" in message
    assert (
        "config.api_port is missing, required by GlobusComputeEndpoint (expected an integer"
        in message
    )


def test_mistyped_config_key(tmp_path: Path) -> None:
    rows = [
        endpoint_row(
            config={"api_port": "eight thousand", "endpoint_uuid": "e", "function_uuid": "f"}
        )
    ]
    with pytest.raises(CommandError) as caught:
        load(
            write_fixture(tmp_path / "c.json", [cluster_row()]),
            write_fixture(tmp_path / "e.json", rows),
        )
    assert "config.api_port: Input should be a valid integer" in str(caught.value)
    assert "'eight thousand'" in str(caught.value)


def test_unset_api_key_variable_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SITE_LLM_KEY", raising=False)
    cluster = cluster_row(
        cluster_name="local",
        cluster_adapter="resource_server_async.clusters.direct_api.DirectAPICluster",
        frameworks=["vllm"],
        config={},
    )
    endpoint = endpoint_row(
        endpoint_slug="local-vllm-m",
        cluster="local",
        model="m",
        endpoint_adapter="resource_server_async.endpoints.direct_api.DirectAPIEndpoint",
        config={"api_url": "http://127.0.0.1:9", "api_key_env_name": "SITE_LLM_KEY"},
    )
    warnings = load(
        write_fixture(tmp_path / "c.json", [cluster]),
        write_fixture(tmp_path / "e.json", [endpoint]),
    )
    assert "environment variable SITE_LLM_KEY (config.api_key_env_name) is not set" in warnings


def test_malformed_json_names_file_line_and_column() -> None:
    with pytest.raises(CommandError) as caught:
        load(DATA / "seed_cluster_verbatim.json")
    assert "seed_cluster_verbatim.json: line 14 column 25: trailing comma before ']'" in str(
        caught.value
    )
    assert not Cluster.objects.exists()


def test_duplicate_name_under_another_pk_is_a_clean_error(tmp_path: Path) -> None:
    load(write_fixture(tmp_path / "a.json", [cluster_row(pk=1)]))
    with pytest.raises(CommandError) as caught:
        load(
            write_fixture(
                tmp_path / "b.json", [cluster_row(pk=2), cluster_row(pk=3, cluster_name="x")]
            )
        )
    message = str(caught.value)
    assert message.startswith("Fixtures not loaded.")
    assert "b.json" in message and "Cluster(pk=2)" in message
    assert list(Cluster.objects.values_list("pk", flat=True)) == [1]
