"""The OpenAI Files and Batches API with the official client: upload, create, poll, download;
invalid lines by number; another principal's files and batches are 404. Real gateway, real
worker process, the fake model server."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import openai
import pytest

from tests.accounting.records_db import fetch_records
from tests.batches.conftest import CountingBackend, chat_line, client, jsonl, read_jsonl
from tests.servers import GatewayServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def _finished(api: openai.OpenAI, batch_id: str, status: str = "completed") -> openai.types.Batch:
    found: list[openai.types.Batch] = []

    def ended() -> bool:
        found[:] = [api.batches.retrieve(batch_id)]
        return found[0].status == status

    wait_until(ended, timeout=30)
    return found[0]


def test_the_openai_client_runs_a_batch_and_downloads_output_and_errors(
    gateway: GatewayServer, worker: subprocess.Popen[bytes], backend: CountingBackend
) -> None:
    api = client(gateway)
    lines = [chat_line(f"ok-{n}", f"question {n}") for n in range(4)]
    lines.append(chat_line("refused", status=400, message="the server said no"))
    uploaded = api.files.create(file=("questions.jsonl", jsonl(lines)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.filename == "questions.jsonl"
    assert uploaded.bytes == len(jsonl(lines))
    assert api.files.retrieve(uploaded.id).id == uploaded.id
    assert api.files.content(uploaded.id).content == jsonl(lines)

    batch = api.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"project": "demo"},
    )
    assert batch.status == "validating" and batch.metadata == {"project": "demo"}
    assert batch.request_counts is not None and batch.request_counts.total == 5
    done = _finished(api, batch.id)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (4, 1)
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    assert done.output_file_id and done.error_file_id

    output = read_jsonl(api.files.content(done.output_file_id).content)
    assert [line["custom_id"] for line in output] == [f"ok-{n}" for n in range(4)]
    for n, line in enumerate(output):
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200
        answer = line["response"]["body"]
        assert answer["choices"][0]["message"]["content"] == f"Echo: question {n}"
    errors = read_jsonl(api.files.content(done.error_file_id).content)
    assert [line["custom_id"] for line in errors] == ["refused"]
    assert errors[0]["response"]["status_code"] == 400
    assert "the server said no" in errors[0]["response"]["body"]["error"]["message"]
    assert errors[0]["error"]["code"]

    # Each line left a record like an interactive request, with the route "batch".
    request_ids = {line["response"]["request_id"] for line in output + errors}

    def recorded() -> list[dict]:
        rows = fetch_records(gateway.env["DATABASE_URL"], "route = ?", ("batch",))
        return [row for row in rows if row["request_id"] in request_ids]

    wait_until(lambda: len(recorded()) == 5)
    rows = recorded()
    assert {row["status"] for row in rows} == {200, 400}
    ok = [row for row in rows if row["status"] == 200]
    assert all(row["endpoint_slug"] == "alpha-vllm-fake-model" for row in ok)
    assert all(row["total_tokens"] and row["credential"] == "api_key" for row in ok)

    listed = api.files.list(purpose="batch_output")
    assert {done.output_file_id, done.error_file_id} <= {f.id for f in listed.data}
    assert api.files.delete(done.error_file_id).deleted
    with pytest.raises(openai.NotFoundError):
        api.files.retrieve(done.error_file_id)


def test_invalid_lines_are_reported_with_their_numbers(gateway: GatewayServer) -> None:
    api = client(gateway)
    good = jsonl([chat_line("a")])
    bad_url = {**chat_line("c"), "url": "/v1/images"}
    unknown_model = chat_line("d")
    unknown_model["body"]["model"] = "no-such-model"
    data = good + b"{not json\n" + jsonl([chat_line("a"), bad_url, unknown_model])
    with pytest.raises(openai.BadRequestError) as refused:
        api.files.create(file=("bad.jsonl", data), purpose="batch")
    message = refused.value.message
    assert "4 invalid lines" in message
    assert "line 2: the line is not JSON" in message
    assert "line 3: custom_id 'a' is repeated (first on line 1)" in message
    assert "line 4: url must be one of" in message
    assert "line 5: body.model 'no-such-model' is not a model you may use" in message
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "invalid_batch_file"
    assert not [f for f in api.files.list().data if f.filename == "bad.jsonl"]


def test_bad_batch_requests_are_refused_in_openais_dialect(gateway: GatewayServer) -> None:
    api = client(gateway)
    uploaded = api.files.create(file=("one.jsonl", jsonl([chat_line("x")])), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="needs every line"):
        api.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        api.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="1h",  # type: ignore[arg-type]
        )
    with pytest.raises(openai.NotFoundError):
        api.batches.create(
            input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
        )


def test_another_principals_files_and_batches_are_404(
    gateway: GatewayServer, new_key: Callable[[str], str]
) -> None:
    owner = client(gateway, new_key("owner"))
    uploaded = owner.files.create(file=("mine.jsonl", jsonl([chat_line("x")])), purpose="batch")
    batch = owner.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    stranger = client(gateway, new_key("stranger"))
    for call in (
        lambda: stranger.files.retrieve(uploaded.id),
        lambda: stranger.files.content(uploaded.id),
        lambda: stranger.files.delete(uploaded.id),
        lambda: stranger.batches.retrieve(batch.id),
        lambda: stranger.batches.cancel(batch.id),
        lambda: stranger.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert stranger.files.list().data == [] and stranger.batches.list().data == []
    assert owner.batches.cancel(batch.id).status == "cancelling"


def test_batches_are_listed_newest_first_by_cursor(
    gateway: GatewayServer, new_key: Callable[[str], str]
) -> None:
    api = client(gateway, new_key("lister"))
    uploaded = api.files.create(file=("one.jsonl", jsonl([chat_line("x")])), purpose="batch")
    made = [
        api.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        for _ in range(3)
    ]
    first = api.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2] and first.has_more
    rest = api.batches.list(limit=2, after=first.data[-1].id)
    assert [b.id for b in rest.data] == made[:1] and not rest.has_more
    # Iterating a page follows the cursor (the client asks with after=last_id).
    assert [b.id for b in api.batches.list(limit=1)] == made[::-1]
    for batch_id in made:
        api.batches.cancel(batch_id)
