"""SIGTERM drains a gateway: open streams finish or end with an error event in the caller's
dialect, every request is recorded, and the process shuts down cleanly."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until

DRAIN_SECONDS = 1.5
SHORT, LONG = 3, 3


@pytest.fixture(scope="module")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("fake-model",)) as server:
        yield server


def _stream(client: openai.OpenAI, chunks: int, delay: float, outcome: dict[str, Any]) -> None:
    text = []
    try:
        for chunk in client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
            extra_body={"fake": {"chunks": chunks, "chunk_delay": delay}},
        ):
            outcome["started"] = True
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
        outcome["result"] = "whole"
    except openai.APIError as exc:
        outcome["result"] = "error"
        outcome["error"] = exc
    outcome["text"] = "".join(text)


def _records(server: GatewayServer) -> int:
    out = server.manage(
        "shell",
        "-c",
        "from resource_server_async.models import RequestRecord; "
        "print(RequestRecord.objects.count())",
    ).stdout
    return int(out.strip().splitlines()[-1])


def test_sigterm_lets_short_streams_finish_and_ends_long_ones(
    tmp_path: Path, backend: FakeBackend
) -> None:
    files = CatalogFiles()
    files.cluster("alpha")
    files.endpoint("alpha", "fake-model", backend.url)
    server = GatewayServer(
        tmp_path,
        fixtures=files.write(tmp_path / "fixtures"),
        env={"GATEWAY_DRAIN_SECONDS": str(DRAIN_SECONDS), "LOG_LEVEL": "INFO"},
        options=("--timeout-graceful-shutdown", str(int(DRAIN_SECONDS) + 10)),
    )
    with server:
        client = server.openai_client()
        outcomes: list[dict[str, Any]] = [{} for _ in range(SHORT + LONG)]
        threads = [
            threading.Thread(
                target=_stream,
                args=(client, 8, 0.1, outcomes[i])
                if i < SHORT
                else (client, 500, 0.1, outcomes[i]),
            )
            for i in range(SHORT + LONG)
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: all(o.get("started") for o in outcomes), 15)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        # After a clean shutdown uvicorn re-raises the signal it caught, so the process ends
        # "killed by SIGTERM", which systemd counts as a clean stop (deploy/).
        assert server.process.wait(timeout=DRAIN_SECONDS + 15) in (0, -signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=10)

        assert [o["result"] for o in outcomes[:SHORT]] == ["whole"] * SHORT
        for cut in outcomes[SHORT:]:
            assert cut["result"] == "error", cut
            assert "shutting down" in str(cut["error"])
            assert cut["text"]  # it had streamed some of the answer first
        log = server.log_text()
        assert "Application shutdown complete." in log
        assert "Draining: " in log and "Drain deadline: ending 3 open stream(s)." in log
        assert _records(server) == SHORT + LONG
