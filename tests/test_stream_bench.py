"""bench/stream_model.py and bench/stream_driver.py: the open-streams bench's model and client."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
import urllib.request
from collections.abc import Iterator

import openai
import orjson
import pytest

from bench.stream_driver import Tally, close_all, open_streams, post_request
from scripts import processes


@pytest.fixture(scope="module")
def model_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = processes.free_port()
    log = tmp_path_factory.mktemp("stream_model") / "model.log"
    process = processes.start(
        [sys.executable, "-m", "bench.stream_model", "--port", str(port)], log, cwd=processes.ROOT
    )
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/v1/models", process=process)
        yield port
    finally:
        processes.stop(process)


def _stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
        stats: dict[str, int] = json.load(answer)
    return stats


def test_the_openai_client_reads_its_stream_and_its_answer(model_port: int) -> None:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{model_port}/v1", api_key="unused")
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "hi"}
    ]
    answer = client.chat.completions.create(model="bench-model", messages=messages)
    assert answer.choices[0].message.content == "hello"
    assert answer.usage is not None and answer.usage.total_tokens == 2
    stream = client.chat.completions.create(
        model="bench-model",
        messages=messages,
        stream=True,
        extra_body={"fake": {"chunk_delay": 0.02}},
    )
    # The stream runs until its reader leaves.
    deltas = [chunk.choices[0].delta for chunk in itertools.islice(stream, 4)]
    stream.close()
    assert deltas[0].role == "assistant"
    assert [delta.content for delta in deltas[1:]] == [" tok"] * 3


def test_the_driver_counts_every_event_and_closed_streams_leave_the_wheel(
    model_port: int,
) -> None:
    body = orjson.dumps({"stream": True, "fake": {"chunk_delay": 0.05}})
    request = post_request(model_port, "/v1/chat/completions", "Bearer unused", body)
    tally = Tally()

    async def hold() -> list[int]:
        sent_before = _stats(model_port)["sent"]
        clients = await open_streams(model_port, request, 20, tally, at_once=8)
        # The first event of each stream, then at least 3 tokens each.
        for _ in range(400):
            if tally.events >= 20 + 3 * 20:
                break
            await asyncio.sleep(0.05)
        close_all(clients)
        await asyncio.sleep(0.3)  # the model sees the connections close
        return [sent_before, _stats(model_port)["sent"]]

    sent_before, sent_at_close = asyncio.run(hold())
    assert (tally.opened, tally.failed) == (20, 0)
    # Every token counted was written (a token written to a closing socket is not read).
    assert 0 <= sent_at_close - sent_before - (tally.events - 20) <= 20
    # Closed streams are no longer written to: the count stays where it was.
    time.sleep(0.3)
    assert _stats(model_port)["sent"] == sent_at_close


def test_a_refused_stream_is_counted_with_its_status(model_port: int) -> None:
    request = post_request(model_port, "/v1/unknown", "Bearer unused", b"{}")
    tally = Tally()

    async def refused() -> None:
        await open_streams(model_port, request, 2, tally, at_once=2)

    asyncio.run(refused())
    assert (tally.opened, tally.failed) == (0, 2)
    assert tally.refusal == "HTTP/1.1 404 Not Found"
