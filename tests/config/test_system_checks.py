"""`manage.py check` reports problems of rows already in the database."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from resource_server_async.models import Cluster, Endpoint
from tests.config.helpers import cluster_row, endpoint_row

pytestmark = pytest.mark.django_db


def test_clean_database_passes() -> None:
    Cluster.objects.create(**cluster_row()["fields"])
    Endpoint.objects.create(**endpoint_row()["fields"])
    out = io.StringIO()
    call_command("check", stdout=out)
    assert "no issues" in out.getvalue()


def test_rows_broken_behind_the_models_back_are_reported() -> None:
    Cluster.objects.create(**cluster_row()["fields"])
    Endpoint.objects.create(**endpoint_row()["fields"])
    # queryset.update() skips the save-time checks, as a raw SQL edit would.
    Endpoint.objects.update(endpoint_adapter="gone.Adapter", cluster="polaris")
    with pytest.raises(SystemCheckError) as caught:
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())
    message = str(caught.value)
    assert "gateway.E001" in message
    assert "cannot import module 'gone'" in message
    assert "cluster 'polaris' does not exist (known clusters: sophia)" in message


def test_save_refuses_an_invalid_row() -> None:
    from resource_server_async.catalog.validation import FixtureRowError

    with pytest.raises(
        FixtureRowError, match="expected 'sophia-vllm-meta-llamameta-llama-31-70b-instruct'"
    ):
        Endpoint.objects.create(**endpoint_row(endpoint_slug="nope")["fields"])
