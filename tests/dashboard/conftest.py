"""One real gateway for the dashboard's end-to-end tests: a fake model server with two models on
two clusters, the Globus stand-in for the Globus sign-in, a staff account, and traffic."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.auth import globus_data as gd
from tests.auth.globus_standin import GlobusStandIn
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer

OPERATORS_GROUP = "5d1b7a8e-0c55-11f0-9a1e-0affd3f4a1c5"
STAFF_USER = "ops"
STAFF_PASSWORD = "ops-dashboard-password-1"


@dataclass
class Site:
    gateway: GatewayServer
    standin: GlobusStandIn
    backend: FakeBackend


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("dashboard-gateway")
    with FakeBackend(models=("model-a", "model-b")) as backend, GlobusStandIn() as standin:
        files = CatalogFiles()
        files.cluster("alpha")
        files.cluster("beta")
        files.endpoint("alpha", "model-a", backend.url)
        files.endpoint("alpha", "model-b", backend.url)
        files.endpoint("beta", "model-b", backend.url)
        env = {
            "GLOBUS_APPLICATION_ID": gd.GATEWAY_CLIENT_ID,
            "GLOBUS_APPLICATION_SECRET": gd.GATEWAY_CLIENT_SECRET,
            "GLOBUS_SDK_SERVICE_URL_AUTH": standin.url,
            "GLOBUS_SDK_SERVICE_URL_GROUPS": standin.url,
            "DASHBOARD_OPERATOR_GROUPS": OPERATORS_GROUP,
            "DASHBOARD_CACHE_SECONDS": "1",
            "DASHBOARD_REFRESH_SECONDS": "1",
            "LIVE_STATE_SECONDS": "1",
        }
        with GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env) as gateway:
            gateway.manage(
                "shell",
                "-c",
                "from django.contrib.auth.models import User; "
                f"User.objects.create_user({STAFF_USER!r}, password={STAFF_PASSWORD!r}, "
                "is_staff=True)",
            )
            yield Site(gateway, standin, backend)
