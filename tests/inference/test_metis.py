"""Metis-style clusters: a model is called only while its cluster's status page says "Live", and
GET /resource_server/{cluster}/jobs lists the models from that same page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from tests.fake_backend import FakeBackend
from tests.inference.conftest import METIS_STATUS, ClientFactory
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def status_page(backend: FakeBackend) -> Iterator[dict[str, Any]]:
    """The fake's status document, restored after the test changes it."""
    yield backend.status_document
    backend.status_document.clear()
    backend.status_document.update({key: dict(value) for key, value in METIS_STATUS.items()})
    backend.status_http_status = 200


def failure(call: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


def test_live_model_is_served(make_client: ClientFactory, backend: FakeBackend) -> None:
    answer = make_client("metis", "api").chat.completions.create(model="live-model", messages=HELLO)

    assert answer.choices[0].message.content == "Echo: hi"
    assert backend.last.path == "/v1/chat/completions"


def test_stopped_model_is_503_with_the_status_seen(
    make_client: ClientFactory, backend: FakeBackend
) -> None:
    before = len(backend.requests_to("/v1/chat/completions"))
    error = failure(
        lambda: make_client("metis", "api").chat.completions.create(
            model="stopped-model", messages=HELLO
        )
    )

    assert error.status_code == 503
    assert error.response.headers["retry-after"] == "30"
    assert error.response.json() == {
        "error": {
            "message": "Model 'stopped-model' on cluster 'metis' is not available: its status "
            "is 'Stopped'. Try again later.",
            "type": "api_error",
            "param": None,
            "code": "model_not_live",
            "info": {"cluster": "metis", "model": "stopped-model", "status": "Stopped"},
        }
    }
    assert len(backend.requests_to("/v1/chat/completions")) == before


def test_model_missing_from_the_status_page_is_503(make_client: ClientFactory) -> None:
    error = failure(
        lambda: make_client("metis", "api").chat.completions.create(
            model="unlisted-model", messages=HELLO
        )
    )

    assert error.status_code == 503
    body = error.response.json()["error"]
    assert body["code"] == "model_not_live"
    assert body["info"]["status"] == "not listed"


def test_a_model_that_goes_live_is_served(
    make_client: ClientFactory, status_page: dict[str, Any]
) -> None:
    status_page["metis-2"]["status"] = "Live"

    answer = make_client("metis", "api").chat.completions.create(
        model="stopped-model", messages=HELLO
    )

    assert answer.model == "stopped-model"


def test_status_page_failure_is_503(
    make_client: ClientFactory, backend: FakeBackend, status_page: dict[str, Any]
) -> None:
    backend.status_http_status = 500

    error = failure(
        lambda: make_client("metis", "api").chat.completions.create(
            model="live-model", messages=HELLO
        )
    )

    assert error.status_code == 503
    assert error.response.json() == {
        "error": {
            "message": "The status of cluster 'metis' cannot be read (HTTP 500), so the gateway "
            "cannot tell whether the model is running. Try again later.",
            "type": "api_error",
            "param": None,
            "code": "cluster_status_unavailable",
            "info": {"cluster": "metis"},
        }
    }


def test_direct_api_cluster_with_a_status_url_checks_it_too(
    make_client: ClientFactory, status_page: dict[str, Any]
) -> None:
    statusful = make_client("statusful")
    # Listed among the "experts" of a live entry.
    assert statusful.chat.completions.create(model="statusful-model", messages=HELLO).choices

    status_page["metis-3"]["status"] = "Starting"
    error = failure(
        lambda: statusful.chat.completions.create(model="statusful-model", messages=HELLO)
    )

    assert error.status_code == 503
    assert error.response.json()["error"]["info"]["status"] == "Starting"


# --- /jobs from the status page ----------------------------------------------------------------

NO_JOBS = {name: [] for name in ("running", "queued", "stopped", "others")} | {
    "private_batch_running": [],
    "private_batch_queued": [],
}


def jobs(gateway: GatewayServer, cluster: str) -> httpx2.Response:
    return httpx2.get(
        f"{gateway.url}/resource_server/{cluster}/jobs",
        headers={"Authorization": f"Bearer {gateway.api_key}"},
        timeout=20,
    )


def test_direct_api_cluster_with_a_status_url_reports_jobs(
    gateway: GatewayServer, status_page: dict[str, Any]
) -> None:
    answer = jobs(gateway, "statusful")

    assert answer.status_code == 200, answer.text
    # Only statusful's own model is shown: the page also lists metis's models.
    assert answer.json() == NO_JOBS | {
        "running": [
            {
                "Models": "statusful-model",
                "Framework": "vllm",
                "Cluster": "statusful",
                "Model Status": "running",
                "Description": "other",
                "Model Version": "",
            }
        ],
        "cluster_status": {
            "cluster": "statusful",
            "total_models": 3,
            "live_models": 2,
            "stopped_models": 1,
        },
    }

    # The page changes: /jobs and the Live check see the same state.
    status_page["metis-3"]["status"] = "Starting"
    queued = jobs(gateway, "statusful").json()
    assert queued["running"] == []
    assert [(job["Models"], job["Model Status"]) for job in queued["queued"]] == [
        ("statusful-model", "starting")
    ]


def test_metis_cluster_reports_jobs(gateway: GatewayServer) -> None:
    answer = jobs(gateway, "metis")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(job["Models"], job["Description"]) for job in body["running"]] == [
        ("live-model", "live-model - serving")
    ]
    assert [(job["Models"], job["Model Status"]) for job in body["stopped"]] == [
        ("stopped-model", "stopped")
    ]
    assert body["cluster_status"]["cluster"] == "metis"


def test_jobs_when_the_status_page_fails(
    gateway: GatewayServer, backend: FakeBackend, status_page: dict[str, Any]
) -> None:
    backend.status_http_status = 500

    answer = jobs(gateway, "statusful")

    assert answer.status_code == 502
    assert answer.json() == {
        "error": {
            "message": "The status page of cluster 'statusful' could not be read: "
            "it answered HTTP 500",
            "type": "api_error",
            "param": None,
            "code": "jobs_failed",
            "info": {"cluster": "statusful"},
        }
    }


def test_direct_api_cluster_without_a_status_url_reports_no_jobs(gateway: GatewayServer) -> None:
    answer = jobs(gateway, "alpha")

    assert answer.status_code == 501
    assert answer.json() == {
        "error": {
            "message": "Cluster 'alpha' does not report jobs (its adapter is DirectAPICluster).",
            "type": "api_error",
            "param": None,
            "code": "jobs_not_supported",
            "info": {"cluster": "alpha"},
        }
    }
