"""One rule for "under maintenance": /status, cluster-scoped, federated and /jobs requests agree,
also for a cluster listed in MAINTENANCE_ERROR_NOTICES with an empty message."""

from __future__ import annotations

import httpx2
import pytest
from openai import OpenAI

from tests.fake_backend import FakeBackend
from tests.inference.conftest import ClientFactory
from tests.inference.test_errors import HELLO, failure, openai_error
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

UNANNOUNCED_NOTICE = "Cluster 'unannounced' is under maintenance."


def test_status_shows_every_cluster_with_a_notice_entry_as_closed(gateway: GatewayServer) -> None:
    answer = httpx2.get(f"{gateway.url}/resource_server/status")

    assert answer.status_code == 200
    assert answer.json() == {
        "alpha": True,
        "beta": True,
        "closed": False,
        "metis": True,
        "statusful": True,
        "unannounced": False,
    }


def test_an_empty_notice_closes_the_cluster_for_requests_too(
    make_client: ClientFactory, backend: FakeBackend
) -> None:
    before = len(backend.requests)
    error = failure(
        lambda: make_client("unannounced").chat.completions.create(
            model="unannounced-model", messages=HELLO
        )
    )

    assert error.status_code == 503
    assert error.response.json() == openai_error(
        UNANNOUNCED_NOTICE, "api_error", "cluster_maintenance", cluster="unannounced"
    )
    assert len(backend.requests) == before


def test_an_empty_notice_closes_the_cluster_for_federated_requests(
    make_client: ClientFactory, backend: FakeBackend
) -> None:
    federated: OpenAI = make_client(cluster=None)
    before = len(backend.requests)
    error = failure(
        lambda: federated.chat.completions.create(model="unannounced-model", messages=HELLO)
    )

    assert error.status_code == 503
    assert error.response.json() == openai_error(
        UNANNOUNCED_NOTICE, "api_error", "cluster_maintenance", clusters=["unannounced"]
    )
    assert len(backend.requests) == before


def test_an_empty_notice_closes_the_jobs_route(gateway: GatewayServer) -> None:
    answer = httpx2.get(
        f"{gateway.url}/resource_server/unannounced/jobs",
        headers={"Authorization": f"Bearer {gateway.api_key}"},
    )

    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "cluster_maintenance"
    assert answer.json()["error"]["message"] == UNANNOUNCED_NOTICE
