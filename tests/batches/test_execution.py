"""The worker's durability: cancel mid-way keeps what finished; kill -9 of the worker and a new
one answer every line exactly once (counted at the model server)."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from tests.batches.conftest import (
    CountingBackend,
    Workers,
    chat_line,
    client,
    jsonl,
    read_jsonl,
    stored_lines,
)
from tests.servers import GatewayServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def _status(api: openai.OpenAI, batch_id: str) -> openai.types.Batch:
    return api.batches.retrieve(batch_id)


def _upload_and_create(api: openai.OpenAI, lines: list[dict]) -> str:
    uploaded = api.files.create(file=("slow.jsonl", jsonl(lines)), purpose="batch")
    return api.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id


def test_cancel_stops_a_batch_mid_way_and_keeps_finished_lines(
    gateway: GatewayServer,
    workers: Workers,
    backend: CountingBackend,
    new_key: Callable[[str], str],
) -> None:
    api = client(gateway, new_key("canceller"))
    lines = [chat_line(f"cancel-{n}", delay=0.15, id=f"cancel-{n}") for n in range(80)]
    batch_id = _upload_and_create(api, lines)
    workers.start()
    answered = lambda: sum(backend.answered[f"cancel-{n}"] for n in range(80))  # noqa: E731
    wait_until(lambda: answered() >= 8, timeout=30)
    assert api.batches.cancel(batch_id).status == "cancelling"
    wait_until(lambda: _status(api, batch_id).status == "cancelled", timeout=30)
    done = _status(api, batch_id)
    assert done.cancelling_at and done.cancelled_at
    assert done.request_counts is not None
    kept = done.request_counts.completed
    assert 8 <= kept < 80 and done.request_counts.failed == 0
    assert done.output_file_id
    output = read_jsonl(api.files.content(done.output_file_id).content)
    assert len(output) == kept
    assert all(line["response"]["status_code"] == 200 for line in output)
    # Nothing more is sent once cancelled: the server's count stays where it stopped.
    assert answered() <= kept + 4  # at most the lines in flight (concurrency 4) when it stopped


def test_kill_9_of_the_worker_and_a_new_one_answer_every_line_exactly_once(
    gateway: GatewayServer,
    workers: Workers,
    backend: CountingBackend,
    new_key: Callable[[str], str],
) -> None:
    api = client(gateway, new_key("survivor"))
    ids = [f"kill-{n}" for n in range(40)]
    batch_id = _upload_and_create(api, [chat_line(i, delay=0.3, id=i) for i in ids])
    first = workers.start()

    def answered() -> int:
        return sum(backend.answered[i] for i in ids)

    def stored() -> int:
        return stored_lines(gateway.env["DATABASE_URL"], batch_id)

    # Killed while lines are in flight (mid-delay) and every answer so far is stored: a line
    # answered but not yet stored (the few milliseconds of one write) would be sent again.
    wait_until(lambda: (n := stored()) >= 8 and n == answered(), timeout=30)
    first.kill()  # SIGKILL: nothing is flushed, the claim is left to expire
    first.wait()
    assert _status(api, batch_id).status == "in_progress"
    workers.start()
    wait_until(lambda: _status(api, batch_id).status == "completed", timeout=60)
    done = _status(api, batch_id)
    assert done.request_counts is not None and done.request_counts.completed == 40
    assert done.output_file_id
    output = read_jsonl(api.files.content(done.output_file_id).content)
    assert sorted(line["custom_id"] for line in output) == sorted(ids)
    # The model server answered each line once: none answered before the kill was resent.
    assert {i: backend.answered[i] for i in ids} == dict.fromkeys(ids, 1)


def test_a_batch_that_cannot_run_fails_with_the_reason_and_is_not_retried(
    gateway: GatewayServer, workers: Workers, new_key: Callable[[str], str]
) -> None:
    api = client(gateway, new_key("unlucky"))
    uploaded = api.files.create(file=("gone.jsonl", jsonl([chat_line("g")])), purpose="batch")
    # The operator lost the storage directory's copy of the input.
    (gateway.tmp_path / "data" / "batch-files" / f"{uploaded.id}.jsonl").unlink()
    batch_id = api.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id
    workers.start()
    wait_until(lambda: _status(api, batch_id).status == "failed", timeout=30)
    failed = _status(api, batch_id)
    assert failed.failed_at and failed.errors and failed.errors.data
    assert failed.errors.data[0].code == "batch_failed"
    assert "could not run" in (failed.errors.data[0].message or "")
