"""`manage.py check_fixtures`: every problem at once, with file, line and column; writes nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from resource_server_async.models import Cluster, Endpoint
from tests.config.helpers import cluster_row, endpoint_row, write_fixture

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def check(*paths: Path) -> tuple[str, str | None]:
    out = io.StringIO()
    try:
        call_command("check_fixtures", *[str(p) for p in paths], stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def test_project_fixtures_are_clean_but_for_the_seeds_framework_mismatch() -> None:
    out, failure = check(ROOT / "fixtures/clusters.json", ROOT / "fixtures/endpoints.json")
    assert failure is None
    assert "0 error(s), 1 warning(s)" in out
    assert "framework 'api' is not among the frameworks of cluster 'your-cluster'" in out


def test_seed_cluster_verbatim_reports_the_trailing_comma_with_its_line() -> None:
    out, failure = check(DATA / "seed_cluster_verbatim.json")
    assert failure == "1 file(s) checked: 1 error(s), 0 warning(s)"
    assert "seed_cluster_verbatim.json: line 14 column 25: trailing comma before ']'" in out


def test_other_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"model": "resource_server_async.cluster", "pk": 1 "fields": {}}\n]\n')
    out, failure = check(broken)
    assert failure is not None
    assert "broken.json: line 2 column 54: Expecting ',' delimiter" in out


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    clusters = write_fixture(
        tmp_path / "clusters.json",
        [
            cluster_row(openai_endpoints=["/chat/completions"]),
            cluster_row(pk=2, cluster_name="polaris", cluster_adapter="nowhere.Cluster"),
        ],
    )
    endpoints = write_fixture(
        tmp_path / "endpoints.json",
        [
            endpoint_row(endpoint_slug="wrong"),
            endpoint_row(pk=2, endpoint_slug="aurora-vllm-m", cluster="aurora", model="m"),
            endpoint_row(pk=3, endpoint_slug="sophia-vllm-x", model="x", config={"api_port": 0}),
            endpoint_row(pk=4, endpoint_slug="sophia-sglang-y", framework="sglang", model="y"),
        ],
    )
    out, failure = check(clusters, endpoints)
    assert failure == "2 file(s) checked: 7 error(s), 1 warning(s)", out
    assert "openai_endpoints entry '/chat/completions' must not start or end with '/'" in out
    assert "cannot import module 'nowhere'" in out
    assert "expected 'sophia-vllm-meta-llamameta-llama-31-70b-instruct'" in out
    assert "cluster 'aurora' does not exist (known clusters: polaris, sophia)" in out
    assert "config.api_port: Input should be greater than or equal to 1" in out
    assert "config.endpoint_uuid is missing, required by GlobusComputeEndpoint" in out
    assert "framework 'sglang' is not among the frameworks of cluster 'sophia'" in out
    assert "endpoints.json row 2 (endpoint 'sophia-vllm-x')" in out
    # Nothing was written.
    assert not Cluster.objects.exists() and not Endpoint.objects.exists()


def test_duplicates_and_bad_shapes(tmp_path: Path) -> None:
    path = write_fixture(
        tmp_path / "dup.json",
        [
            cluster_row(),
            cluster_row(pk=2),
            {"model": "resource_server_async.cluster"},
            "nonsense",
        ],
    )
    out, failure = check(path)
    assert failure is not None
    assert "cluster_name 'sophia' is also defined at" in out
    assert out.count('each row must be {"model": ..., "pk": ..., "fields": {...}}') == 2


def test_unknown_field_and_config_not_an_object(tmp_path: Path) -> None:
    path = write_fixture(tmp_path / "c.json", [cluster_row(clustername="typo", config="[1, 2]")])
    out, failure = check(path)
    assert failure is not None
    assert "unknown field 'clustername'" in out
    assert "config must be a JSON object, got list" in out


def test_clusters_already_in_the_database_satisfy_references(tmp_path: Path) -> None:
    call_command(
        "loaddata", str(write_fixture(tmp_path / "c.json", [cluster_row()])), stdout=io.StringIO()
    )
    out, failure = check(write_fixture(tmp_path / "e.json", [endpoint_row()]))
    assert failure is None, out
    assert "0 error(s), 0 warning(s)" in out


def test_unreadable_file(tmp_path: Path) -> None:
    out, failure = check(tmp_path / "missing.json")
    assert failure is not None
    assert "missing.json: cannot read file" in out
