"""manage.py status (table and --json), and a fixture loaded into a running gateway: its workers
serve the new endpoint without a restart, because loaddata moves the catalog version."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until


def _catalog(backend: FakeBackend, models: tuple[str, ...]) -> CatalogFiles:
    files = CatalogFiles()
    files.cluster("alpha")
    for model in models:
        files.endpoint("alpha", model, backend.url)
    return files


def test_status_and_a_fixture_update_picked_up_by_running_workers(tmp_path: Path) -> None:
    with FakeBackend(models=("first-model", "second-model")) as backend:
        first = _catalog(backend, ("first-model",)).write(tmp_path / "first")
        # Several workers need Redis (issue 16); without it, one worker still shows the reload.
        workers = 2 if os.environ.get("REDIS_URL") else 1
        with GatewayServer(tmp_path, fixtures=first, workers=workers) as server:
            before = json.loads(server.manage("status", "--json").stdout)
            assert [c["name"] for c in before["clusters"]] == ["alpha"]
            assert [(e["model"], e["state"]) for e in before["endpoints"]] == [
                ("first-model", "open")
            ]
            table = server.manage("status").stdout
            assert "first-model" in table and "Maintenance now\nnone" in table

            client = server.openai_client()
            assert [m.id for m in client.models.list()] == ["first-model"]

            both = _catalog(backend, ("first-model", "second-model")).write(tmp_path / "both")
            server.manage("loaddata", *[str(f) for f in both])
            after = json.loads(server.manage("status", "--json").stdout)
            assert after["catalog_version"] != before["catalog_version"]
            assert len(after["endpoints"]) == 2

            # Every worker rebuilds its snapshot; several calls reach each of them.
            def served() -> bool:
                return all(
                    sorted(m.id for m in client.models.list()) == ["first-model", "second-model"]
                    for _ in range(6)
                )

            wait_until(served, 20)
            answer = client.chat.completions.create(
                model="second-model", messages=[{"role": "user", "content": "new here"}]
            )
            assert answer.choices[0].message.content
