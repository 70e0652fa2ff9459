"""The one ASGI entry point, started for real: API routes, admin, and live catalog changes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.config.helpers import DIRECT_CLUSTER, cluster_row, write_fixture
from tests.servers import ROOT, GatewayServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    fixtures = [ROOT / "fixtures/clusters.json", ROOT / "fixtures/endpoints.json"]
    with GatewayServer(tmp_path_factory.mktemp("gw"), fixtures=fixtures) as server:
        yield server


def get(url: str, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_health(gateway: GatewayServer) -> None:
    status, body, headers = get(f"{gateway.url}/resource_server/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["content-type"] == "application/json"


def test_status_lists_clusters(gateway: GatewayServer) -> None:
    status, body, _ = get(f"{gateway.url}/resource_server/status")
    assert status == 200
    assert json.loads(body) == {"local": True, "your-cluster": True}


def test_unknown_route_and_method_answer_json(gateway: GatewayServer) -> None:
    status, body, _ = get(f"{gateway.url}/resource_server/nowhere")
    assert status == 404
    assert json.loads(body) == {
        "error": {
            "message": "No route GET /resource_server/nowhere.",
            "type": "not_found_error",
            "param": None,
            "code": "route_not_found",
        }
    }
    status, body, _ = get(f"{gateway.url}/resource_server/health", method="DELETE")
    assert status == 405
    assert json.loads(body)["error"]["code"] == "method_not_allowed"


def test_admin_and_its_static_files_are_served(gateway: GatewayServer) -> None:
    status, body, _ = get(f"{gateway.url}/admin/login/")
    assert status == 200 and b"Django" in body
    status, body, headers = get(f"{gateway.url}/static/admin/css/base.css")
    assert status == 200 and headers["content-type"].startswith("text/css")


def test_missing_static_file_answers_404_without_a_traceback(gateway: GatewayServer) -> None:
    for path in ("/static/nope.css", "/static/admin/css/nope.css", "/static/../settings.py"):
        status, _, _ = get(f"{gateway.url}{path}")
        assert status == 404, path
    assert "Traceback" not in gateway.log_text()


def test_development_mode_says_so_at_start(gateway: GatewayServer) -> None:
    assert "GATEWAY_DEV_MODE is on" in gateway.log_text()


def test_new_cluster_is_served_without_restart(gateway: GatewayServer, tmp_path: Path) -> None:
    extra = cluster_row(pk=50, cluster_name="polaris", cluster_adapter=DIRECT_CLUSTER, config={})
    gateway.manage("loaddata", str(write_fixture(tmp_path / "more.json", [extra])))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, body, _ = get(f"{gateway.url}/resource_server/status")
        if "polaris" in json.loads(body):
            break
        time.sleep(0.1)
    assert json.loads(body) == {"local": True, "polaris": True, "your-cluster": True}
