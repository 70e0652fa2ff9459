"""Row validation of config.capabilities and config.aliases; the alias maps in the snapshot; the
catalog's version counter, bumped by every change through Django whatever the clocks say."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from resource_server_async.catalog.snapshot import Catalog
from resource_server_async.catalog.validation import FixtureRowError, validate_endpoint
from resource_server_async.catalog.version import current_version
from resource_server_async.models import CatalogVersion, Cluster, Endpoint, MaintenanceWindow
from tests.config.helpers import cluster_row, endpoint_row

pytestmark = pytest.mark.django_db

MODEL = "meta-llama/Meta-Llama-3.1-70B-Instruct"
BASE_CONFIG = {"api_port": 8000, "endpoint_uuid": "e-uuid", "function_uuid": "f-uuid"}


def problems_of(**config: object) -> list[str]:
    fields = endpoint_row(config={**BASE_CONFIG, **config})["fields"]
    return [str(p) for p in validate_endpoint(fields, "endpoint 'e'") if p.level == "error"]


def test_valid_capabilities_and_aliases_pass() -> None:
    assert (
        problems_of(
            capabilities={
                "schema_version": 1,
                "context_window_tokens": 8192,
                "input_modalities": ["text"],
                "api_protocols": ["openai"],
                "tool_calling": False,
            },
            aliases=["llama-70b"],
        )
        == []
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"capabilities": {"context_window": 8192}},
            "config.capabilities.context_window: Extra inputs are not permitted",
        ),
        (
            {"capabilities": {"context_window_tokens": 0}},
            "config.capabilities.context_window_tokens: Input should be greater than 0",
        ),
        (
            {"capabilities": {"input_modalities": ["smell"]}},
            "config.capabilities.input_modalities.0: Input should be 'text', 'image', 'audio', "
            "'video' or 'file'",
        ),
        ({"capabilities": {"schema_version": 2}}, "config.capabilities.schema_version"),
        ({"aliases": "llama"}, "config.aliases: Input should be a valid tuple"),
        ({"aliases": [" "]}, "aliases must be non-empty model names"),
    ],
)
def test_bad_capabilities_and_aliases_are_refused_with_the_key(
    config: dict[str, object], expected: str
) -> None:
    problems = problems_of(**config)
    assert any(expected in p for p in problems), problems


def test_a_bad_row_cannot_be_saved() -> None:
    Cluster.objects.create(**cluster_row()["fields"])
    with pytest.raises(FixtureRowError, match=r"config\.capabilities\.streaming"):
        Endpoint.objects.create(
            **endpoint_row(config={**BASE_CONFIG, "capabilities": {"streaming": "often"}})["fields"]
        )


def test_aliases_are_dictionary_reads_and_a_model_wins_over_an_alias() -> None:
    Cluster.objects.create(**cluster_row()["fields"])
    Endpoint.objects.create(
        **endpoint_row(config={**BASE_CONFIG, "aliases": ["llama-70b", "other"]})["fields"]
    )
    Endpoint.objects.create(
        **endpoint_row(pk=2, endpoint_slug="sophia-vllm-other", model="other")["fields"]
    )
    catalog = Catalog()
    catalog.reload()

    with CaptureQueriesContext(connection) as queries:
        by_alias = catalog.lookup("sophia", "vllm", "LLAMA-70B")
        other = catalog.lookup("sophia", "vllm", "other")
        federated = catalog.endpoints_for_model("llama-70b")
    assert len(queries) == 0
    assert by_alias is not None and by_alias.model == MODEL
    assert other is not None and other.model == "other", "a model's own name is never an alias"
    assert [e.model for e in federated] == [MODEL]


def test_every_change_through_django_bumps_the_version() -> None:
    start = current_version()
    Cluster.objects.create(**cluster_row()["fields"])
    assert current_version() == start + 1
    window = MaintenanceWindow.objects.create(cluster="sophia")
    # A host whose clock lags: the row's times are in the past, the counter still moves.
    window.starts_at = timezone.now() - timedelta(days=30)
    window.save()
    assert current_version() == start + 3
    MaintenanceWindow.objects.all().delete()
    assert current_version() == start + 4


def test_loaddata_bumps_the_version_and_a_reload_follows(tmp_path: Path) -> None:
    catalog = Catalog()
    catalog.reload()
    assert catalog.reload() is False
    fixture = tmp_path / "catalog.json"
    fixture.write_text(json.dumps([cluster_row(), endpoint_row()]))
    call_command("loaddata", str(fixture), verbosity=0)
    assert catalog.reload() is True
    assert catalog.lookup("sophia", "vllm", MODEL) is not None
    Endpoint.objects.all().delete()
    assert catalog.reload() is True
    assert catalog.lookup("sophia", "vllm", MODEL) is None


def test_a_counter_made_again_never_repeats_a_number_a_worker_saw() -> None:
    Cluster.objects.create(**cluster_row()["fields"])
    catalog = Catalog()
    catalog.reload()
    seen = current_version()
    # A flushed or restored database: the counter's row is gone and the same rows come back.
    CatalogVersion.objects.all().delete()
    Cluster.objects.all().delete()
    Cluster.objects.create(**cluster_row()["fields"])

    assert current_version() != seen
    assert catalog.reload() is True
