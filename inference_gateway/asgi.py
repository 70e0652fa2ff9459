"""The one ASGI entry point: the API under /resource_server and /metrics, Django (the admin,
the dashboard) for the rest.

Run with: python -m inference_gateway.serve inference_gateway.asgi:application (uvicorn's
options; serve.py says why not the plain `uvicorn` command)
"""

from __future__ import annotations

import atexit
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_gateway.settings")

from resource_server_async.accounting import metrics_files

if settings.METRICS_ENABLED:
    # Before anything imports prometheus_client: it picks its multiprocess mode at import.
    metrics_files.prepare(settings.METRICS_DIR)
    atexit.register(metrics_files.process_exited)

django_application = get_asgi_application()  # sets Django up before the API imports models

from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Mount  # noqa: E402
from starlette.staticfiles import StaticFiles  # noqa: E402
from starlette.types import Receive, Scope, Send  # noqa: E402

from resource_server_async.api.app import build_app  # noqa: E402

api_application = build_app()
# The admin's CSS and scripts, served from the installed Django package (no collectstatic
# needed). Mounted in an application of its own, whose error handling answers a missing file
# with 404 (StaticFiles raises it as an exception, a 500 when called bare).
# The dashboard's own files come from its package, Chart.js from its npm install.
from resource_server_async.dashboard.assets import VENDOR_DIR  # noqa: E402

static_application = Starlette(
    routes=[
        Mount("/static/dashboard/vendor", app=StaticFiles(directory=VENDOR_DIR, check_dir=False)),
        Mount(
            "/static",
            app=StaticFiles(
                packages=[
                    ("django.contrib.admin", "static"),
                    ("resource_server_async.dashboard", "static"),
                ]
            ),
        ),
    ]
)

_API_PREFIXES = ("/resource_server/",)
_API_PATHS = ("/resource_server", "/metrics")


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await api_application(scope, receive, send)
        return
    path: str = scope.get("path", "")
    if path.startswith(_API_PREFIXES) or path in _API_PATHS:
        await api_application(scope, receive, send)
    elif path.startswith("/static/"):
        await static_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)  # type: ignore[arg-type]
