"""Batch lines are charged to the principal's project: an exhausted allocation fails the
remaining lines (the error file says so) and the batch still ends, instead of waiting a month."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.batches.conftest import Workers, chat_line, client, jsonl, read_jsonl
from tests.servers import GatewayServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def test_an_exhausted_allocation_fails_the_remaining_lines_and_the_batch_ends(
    gateway: GatewayServer, workers: Workers, new_key: Callable[[str], str]
) -> None:
    key = new_key("budgeted")
    gateway.manage("allocations", "project", "batch-budget", "--key", "budgeted")
    # One token: the first line to be charged holds its reservation, so every other is refused.
    gateway.manage(
        "allocations", "set", "batch-month", "--project", "batch-budget", "--tokens", "1"
    )
    workers.start()  # after the allocation: the worker's catalog has it from the start
    api = client(gateway, key)
    lines = [chat_line(f"line-{n}", f"question {n}") for n in range(5)]
    uploaded = api.files.create(file=("budget.jsonl", jsonl(lines)), purpose="batch")
    batch = api.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    def ended() -> bool:
        return api.batches.retrieve(batch.id).status == "completed"

    wait_until(ended, timeout=30)
    done = api.batches.retrieve(batch.id)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 4)
    assert done.error_file_id
    errors = read_jsonl(api.files.content(done.error_file_id).content)
    assert len(errors) == 4
    for line in errors:
        assert line["response"]["status_code"] == 429
        assert line["response"]["body"]["error"]["code"] == "allocation_exhausted"
