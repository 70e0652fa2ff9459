"""The runtime: one per app start, closed at shutdown; configured Globus SDKs loaded at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from resource_server_async import runtime
from resource_server_async.catalog.snapshot import catalog
from resource_server_async.runtime import NOT_STARTED, Runtime, installed
from tests.auth.test_api_keys import orm
from tests.compute.catalog import create_hpc_rows
from tests.compute.inprocess import serve_api

ROOT = Path(__file__).resolve().parent.parent

# Starts the app's lifespan in a fresh interpreter (so nothing is imported yet) and reports
# which SDKs start-up imported, and whether the GC freeze covered them.
_START_UP_PROBE = """
import asyncio, gc, json, sys
import django
django.setup()
from resource_server_async import runtime
from resource_server_async.api.app import build_app, lifespan
before = {name: name in sys.modules for name in ("globus_sdk", "globus_compute_sdk")}
async def main():
    async with lifespan(build_app()):
        tracked = {id(o) for o in gc.get_objects()}
        sdk = sys.modules.get("globus_sdk")
        print(json.dumps({
            "before": before,
            "after": {name: name in sys.modules for name in before},
            "frozen": sdk is not None and id(vars(sdk)) not in tracked,
            "runtime_has_globus": runtime.current.globus is not None,
        }))
asyncio.run(main())
"""


def _start_up(tmp_path: Path, **env: str) -> dict[str, object]:
    return run_start_up_probe(_START_UP_PROBE, tmp_path, **env)


def run_start_up_probe(probe: str, tmp_path: Path, **env: str) -> dict[str, object]:
    """Run `probe` in a fresh interpreter (nothing imported yet); its last line of JSON."""
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        # A database with no tables: the catalog's first load fails and is logged, which
        # start-up survives by design; what is measured here is the imports.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "REDIS_URL": "",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_configured_globus_sdk_is_imported_at_start_up_and_frozen(tmp_path: Path) -> None:
    started = _start_up(tmp_path, GLOBUS_APPLICATION_ID=str(uuid.uuid4()))

    assert started["before"] == {"globus_sdk": False, "globus_compute_sdk": False}
    assert started["after"] == {"globus_sdk": True, "globus_compute_sdk": False}
    assert started["runtime_has_globus"] is True
    # Imported before the lifespan's gc.freeze(), so its objects are out of the collector's way.
    assert started["frozen"] is True


def test_an_unconfigured_globus_sdk_is_not_imported(tmp_path: Path) -> None:
    started = _start_up(tmp_path, GLOBUS_APPLICATION_ID="")

    assert started["after"] == {"globus_sdk": False, "globus_compute_sdk": False}
    assert started["runtime_has_globus"] is False


@pytest.mark.django_db(transaction=True)
async def test_the_compute_executor_is_built_at_start_up_only_when_the_catalog_uses_it(
    settings: SettingsWrapper,
) -> None:
    settings.COMPUTE_EXECUTOR = "globus"
    async with installed(Runtime.from_settings()) as bare:
        await bare.start_catalog(60)
        bare.start_compute()
        assert bare._executor is None  # no Globus Compute endpoint: no executor, no SDK call

    endpoint = str(uuid.uuid4())
    await orm(lambda: create_hpc_rows(9, endpoint, str(uuid.uuid4()), endpoint, ["completions"]))
    async with installed(Runtime.from_settings()) as used:
        await used.start_catalog(60)
        used.start_compute()
        from resource_server_async.compute.globus import GlobusComputeExecutor

        assert isinstance(used._executor, GlobusComputeExecutor)
        assert "hpc-vllm-fake-model" in catalog.snapshot.endpoints
    assert used._executor is None  # closed with its runtime


@pytest.mark.django_db(transaction=True)
async def test_each_app_start_gets_a_fresh_runtime_closed_at_shutdown(
    settings: SettingsWrapper,
) -> None:
    settings.REDIS_URL = ""
    seen: list[Runtime] = []
    sessions = []
    for _ in range(2):
        async with serve_api():
            current = runtime.current
            assert current is not NOT_STARTED
            seen.append(current)
            sessions.append(current.upstream.session("http://127.0.0.1:9"))
            stream = await current.hub.open("task", lifetime=60)
            await stream.close()

        assert runtime.current is NOT_STARTED
        assert current.upstream.origins == []

    assert seen[0] is not seen[1]
    assert all(session.closed for session in sessions)


async def test_a_runtime_used_before_start_up_says_so() -> None:
    with pytest.raises(RuntimeError, match="before the API's lifespan started"):
        runtime.current.upstream  # noqa: B018
