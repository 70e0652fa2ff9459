"""The admin validates clusters and endpoints exactly as loaddata does."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from resource_server_async.catalog.validation import LIMIT_FIELDS
from resource_server_async.models import Cluster, Endpoint
from tests.config.helpers import cluster_row, endpoint_row

pytestmark = pytest.mark.django_db

# The admin form posts every limit field (0 = the gateway default).
NO_LIMITS = dict.fromkeys(LIMIT_FIELDS, 0)


@pytest.fixture
def staff(admin_client: Client) -> Client:
    Cluster.objects.create(**cluster_row()["fields"])
    return admin_client


def form(fields: dict[str, object]) -> dict[str, object]:
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in fields.items()}


def test_valid_endpoint_is_saved(staff: Client) -> None:
    response = staff.post(
        "/admin/resource_server_async/endpoint/add/",
        form(endpoint_row()["fields"] | NO_LIMITS),
    )
    assert response.status_code == 302, response.content[:2000]
    assert Endpoint.objects.get().config["api_port"] == 8000


def test_wrong_slug_is_refused_with_the_expected_one(staff: Client) -> None:
    fields = endpoint_row(endpoint_slug="bad-slug")["fields"] | NO_LIMITS
    response = staff.post("/admin/resource_server_async/endpoint/add/", form(fields))
    assert response.status_code == 200
    assert (
        "expected &#x27;sophia-vllm-meta-llamameta-llama-31-70b-instruct&#x27;"
        in response.content.decode()
    )
    assert not Endpoint.objects.exists()


def test_missing_config_key_and_unknown_cluster_are_refused(staff: Client) -> None:
    fields = endpoint_row(
        cluster="polaris",
        endpoint_slug="polaris-vllm-meta-llamameta-llama-31-70b-instruct",
        config={"endpoint_uuid": "e", "function_uuid": "f"},
    )["fields"]
    response = staff.post("/admin/resource_server_async/endpoint/add/", form(fields | NO_LIMITS))
    page = response.content.decode()
    assert response.status_code == 200
    assert "config.api_port is missing" in page
    assert "cluster &#x27;polaris&#x27; does not exist" in page
    assert not Endpoint.objects.exists()


def test_cluster_with_bad_adapter_is_refused(admin_client: Client) -> None:
    fields = cluster_row(
        cluster_adapter="resource_server_async.endpoints.direct_api.DirectAPIEndpoint"
    )["fields"]
    response = admin_client.post("/admin/resource_server_async/cluster/add/", form(fields))
    assert response.status_code == 200
    assert (
        "is not a subclass of resource_server_async.clusters.base.BaseCluster"
        in response.content.decode()
    )
    assert not Cluster.objects.exists()
