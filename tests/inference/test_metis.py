"""Metis-style clusters: a model is called only while its cluster's status page says "Live"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fake_backend import FakeBackend
from tests.inference.conftest import METIS_STATUS, ClientFactory

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
