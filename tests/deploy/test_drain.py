"""SIGTERM drains a gateway: open streams finish or end with an error event in the caller's
dialect (OpenAI's and Anthropic's, read by their official clients), every request is recorded,
a cut stream's record says `gateway_shutting_down`, and the process exits 0."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.accounting.records_db import fetch_records
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until

DRAIN_SECONDS = 1.5
SHORT, LONG = 3, 3
CUT_CODE = "gateway_shutting_down"
CUT_MESSAGE = "The gateway is shutting down and ended this stream; retry the request."
PROMPT: list[Any] = [{"role": "user", "content": "one two three"}]
# Reads one stream into its outcome dict ("started", "text"), raising what the client raises.
Reader = Callable[[dict[str, Any]], str]


@pytest.fixture(scope="module")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=("fake-model",)) as server:
        yield server


def _openai_stream(client: openai.OpenAI, chunks: int, request_id: str) -> Reader:
    def read(outcome: dict[str, Any]) -> str:
        text = []
        for chunk in client.chat.completions.create(
            model="fake-model",
            messages=PROMPT,
            stream=True,
            extra_headers={"x-request-id": request_id},
            extra_body={"fake": {"chunks": chunks, "chunk_delay": 0.1}},
        ):
            outcome["started"] = True
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
                outcome["text"] = "".join(text)
        return "".join(text)

    return read


def _anthropic_stream(client: anthropic.Anthropic, request_id: str) -> Reader:
    def read(outcome: dict[str, Any]) -> str:
        with client.messages.stream(
            model="fake-model",
            max_tokens=1000,
            messages=PROMPT,
            extra_headers={"x-request-id": request_id},
            extra_body={"fake": {"chunks": 500, "chunk_delay": 0.1}},
        ) as stream:
            for text in stream.text_stream:
                outcome["started"] = True
                outcome["text"] = outcome.get("text", "") + text
        return str(outcome.get("text", ""))

    return read


def _run(read: Reader, outcome: dict[str, Any]) -> None:
    try:
        read(outcome)
        outcome["result"] = "whole"
    except (openai.APIError, anthropic.APIError) as exc:
        outcome["result"] = "error"
        outcome["error"] = exc


def test_sigterm_lets_short_streams_finish_ends_long_ones_and_exits_0(
    tmp_path: Path, backend: FakeBackend
) -> None:
    files = CatalogFiles()
    files.cluster("alpha", operations=["chat/completions", "messages"])
    files.endpoint("alpha", "fake-model", backend.url)
    server = GatewayServer(
        tmp_path,
        fixtures=files.write(tmp_path / "fixtures"),
        env={"GATEWAY_DRAIN_SECONDS": str(DRAIN_SECONDS), "LOG_LEVEL": "INFO"},
        options=("--timeout-graceful-shutdown", str(int(DRAIN_SECONDS) + 10)),
    )
    with server:
        client = server.openai_client()
        messages = anthropic.Anthropic(
            base_url=f"{server.url}/resource_server/alpha/vllm",
            api_key=server.api_key,
            max_retries=0,
            timeout=20,
        )
        reads = {f"short-{i}": _openai_stream(client, 8, f"short-{i}") for i in range(SHORT)}
        reads |= {f"long-{i}": _openai_stream(client, 500, f"long-{i}") for i in range(LONG)}
        reads["anthropic"] = _anthropic_stream(messages, "anthropic")
        outcomes: dict[str, dict[str, Any]] = {name: {} for name in reads}
        threads = [
            threading.Thread(target=_run, args=(read, outcomes[name]))
            for name, read in reads.items()
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: all(o.get("started") for o in outcomes.values()), 15)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        # A clean stop after the drain: status 0, not "killed by SIGTERM" (serve.py).
        assert server.process.wait(timeout=DRAIN_SECONDS + 15) == 0
        for thread in threads:
            thread.join(timeout=10)

        for i in range(SHORT):
            assert outcomes[f"short-{i}"]["result"] == "whole"
        for i in range(LONG):
            cut = outcomes[f"long-{i}"]
            assert cut["result"] == "error", cut
            assert isinstance(cut["error"], openai.APIError)
            assert cut["error"].code == CUT_CODE
            assert cut["text"]  # it had streamed some of the answer first
        # Anthropic's dialect: `event: error` with {"type": "error", "error": {type, message}}.
        cut = outcomes["anthropic"]
        assert cut["result"] == "error", cut
        assert isinstance(cut["error"], anthropic.APIStatusError)
        assert cut["error"].body == {
            "type": "error",
            "error": {"type": "api_error", "message": CUT_MESSAGE},
        }
        assert cut["text"]

        log = server.log_text()
        assert "Application shutdown complete." in log
        assert "Draining: " in log and "Drain deadline: ending 4 open stream(s)." in log
        # Every request recorded once (the writer flushed before the exit); the cut ones say why.
        records = {r["request_id"]: r for r in fetch_records(server.env["DATABASE_URL"])}
        assert sorted(records) == sorted(reads)
        for name, record in records.items():
            assert record["stream"] and record["status"] == 200
            expected = "" if name.startswith("short") else CUT_CODE
            assert record["error_code"] == expected, (name, record["error_code"])
