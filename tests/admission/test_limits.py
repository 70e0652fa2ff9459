"""Limits end to end: real gateway processes (two workers and a second host sharing Redis, or
one process in-process), the fake model server, httpx and the official clients as callers."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.admission.conftest import Gateways
from tests.fake_backend import FakeBackend
from tests.waiting import wait_until, wait_until_async


def chat(model: str, text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def post(gateways: Gateways, index: int, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        gateways.url(index, body["model"]),
        json=body,
        headers={"Authorization": f"Bearer {gateways.key}"},
        timeout=20,
    )


async def test_rpm_user_admits_exactly_its_limit_across_workers_and_hosts(
    gateways: Gateways,
) -> None:
    headers = {"Authorization": f"Bearer {gateways.key}"}
    async with httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_connections=50)) as client:

        async def one(index: int) -> httpx2.Response:
            url = gateways.url(index, "rpm-model")
            return await client.post(url, json=chat("rpm-model"), headers=headers)

        answers = await asyncio.gather(*(one(i) for i in range(40)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 10 + [429] * 30
    for answer in answers:
        if answer.status_code == 429:
            # 10 a minute: one more request fits 6 s after the bucket emptied.
            assert 5 <= int(answer.headers["retry-after"]) <= 7
            assert answer.json()["error"]["code"] == "rate_limit_exceeded"
            assert answer.json()["error"]["type"] == "rate_limit_error"
            assert answer.headers["x-ratelimit-remaining-requests"] == "0"
        assert answer.headers["x-ratelimit-limit-requests"] == "10"


def test_headers_count_down_and_name_the_reset(gateways: Gateways) -> None:
    remaining = []
    for index in range(3):
        answer = post(gateways, index, chat("open-model"))
        assert answer.status_code == 200
        assert "x-ratelimit-limit-requests" not in answer.headers  # no limit, no headers
    for index in range(3):
        answer = post(gateways, index, chat("retry-model"))
        assert answer.status_code == 200
        remaining.append(int(answer.headers["x-ratelimit-remaining-requests"]))
        # The bucket is full again 6 s per request taken: "6s", "12s", ... (minus refill).
        reset = answer.headers["x-ratelimit-reset-requests"]
        assert reset.endswith("s") and not reset.endswith("ms")
    assert remaining == [9, 8, 7]
    assert "x-ratelimit-limit-tokens" not in answer.headers  # retry-model has no token limit


def test_the_openai_client_retries_by_itself_once_the_window_passes(
    gateways: Gateways,
) -> None:
    host = gateways.hosts[-1]
    client = openai.OpenAI(
        base_url=f"{host.url}/resource_server/alpha/vllm/v1", api_key=gateways.key, timeout=20
    )  # default retries (2), which follow Retry-After
    while True:  # empty the bucket (the header test took some)
        answer = post(gateways, 0, chat("retry-model"))
        if answer.status_code == 429:
            break
    started = time.monotonic()

    completion = client.chat.completions.create(
        model="retry-model", messages=[{"role": "user", "content": "again"}]
    )

    assert completion.choices[0].message.content
    assert time.monotonic() - started < 8  # one wait of about 6 s, then it passed


def test_tpm_user_stops_after_the_tokens_the_backend_reported(gateways: Gateways) -> None:
    # Short words: the server reports about 4 tokens per 4 bytes, where the reservation (one
    # token per 4 bytes, plus max_tokens) guesses one. A guess-based limit would pass ~5.
    body = chat("tpm-model", " ".join(["a"] * 40), max_tokens=1)
    used: list[int] = []
    refused = None
    for index in range(10):
        answer = post(gateways, index, body)
        if answer.status_code == 429:
            refused = answer
            break
        assert answer.status_code == 200
        used.append(answer.json()["usage"]["total_tokens"])
    assert refused is not None
    reserve = -(-len(httpx2.Request("POST", "/", json=body).content) // 4) + 1
    assert sum(used) >= 200 - reserve  # stopped once the reported usage filled the bucket
    assert len(used) < 200 // reserve
    assert refused.headers["x-ratelimit-limit-tokens"] == "200"
    assert int(refused.headers["x-ratelimit-remaining-tokens"]) < reserve


def stream(gateways: Gateways, body: dict[str, Any]) -> AbstractContextManager[httpx2.Response]:
    return httpx2.stream(
        "POST",
        gateways.url(0, body["model"]),
        json=body,
        headers={"Authorization": f"Bearer {gateways.key}"},
        timeout=20,
    )


def _remaining_tokens(gateways: Gateways, model: str) -> int:
    answer = post(gateways, 1, chat(model, max_tokens=1))
    assert answer.status_code == 200, answer.text
    return int(answer.headers["x-ratelimit-remaining-tokens"])


def test_a_cut_stream_releases_its_reservation(gateways: Gateways, backend: FakeBackend) -> None:
    body = chat("cut-model", stream=True, max_tokens=3000, fake={"stop_after": 1, "id": "cut"})
    with stream(gateways, body) as answer:
        assert answer.status_code == 200
        assert int(answer.headers["x-ratelimit-remaining-tokens"]) < 2000  # 3000 reserved
        events = b"".join(answer.iter_bytes())
    assert b"error" in events  # the cut stream ended with an error event
    assert backend.streams["cut"] == "cut"

    # Released: only a few tokens were used; the slot is free again at once.
    assert _remaining_tokens(gateways, "cut-model") > 4900


def test_a_client_that_disconnects_releases_its_reservation_and_slot(
    gateways: Gateways, backend: FakeBackend
) -> None:
    stream_id = f"gone-{gateways.mode}"
    body = chat(
        "cut-model",
        stream=True,
        max_tokens=3000,
        fake={"chunk_delay": 0.3, "chunks": 50, "id": stream_id},
    )
    with stream(gateways, body) as answer:
        assert answer.status_code == 200
        events = answer.iter_raw()  # kept: dropping the iterator would close the stream
        assert next(events).startswith(b"data: ")
        # max_concurrent_user = 1: a second request waits for this one.
        assert post(gateways, 1, chat("cut-model")).status_code == 429
    wait_until(lambda: backend.streams.get(stream_id) == "aborted by client")

    def admitted() -> bool:
        return post(gateways, 1, chat("cut-model", max_tokens=1)).status_code == 200

    wait_until(admitted)
    assert _remaining_tokens(gateways, "cut-model") > 4900


async def test_max_concurrent_user_bounds_requests_in_flight(
    gateways: Gateways, backend: FakeBackend
) -> None:
    async def scenario() -> list[int]:
        headers = {"Authorization": f"Bearer {gateways.key}"}
        async with httpx2.AsyncClient(timeout=30) as client:
            slow = [
                asyncio.ensure_future(
                    client.post(
                        gateways.url(i, "busy-model"),
                        json=chat(
                            "busy-model", fake={"delay": 3, "id": f"busy-{gateways.mode}-{i}"}
                        ),
                        headers=headers,
                    )
                )
                for i in range(2)
            ]
            ids = [f"busy-{gateways.mode}-{i}" for i in range(2)]
            await wait_until_async(lambda: all(backend.calls.get(i) == "waiting" for i in ids))
            third = await client.post(
                gateways.url(1, "busy-model"), json=chat("busy-model"), headers=headers
            )
            assert third.headers["retry-after"] == "1"
            first_two = await asyncio.gather(*slow)
            fourth = await client.post(
                gateways.url(1, "busy-model"), json=chat("busy-model"), headers=headers
            )
            return [third.status_code, *(a.status_code for a in first_two), fourth.status_code]

    assert await asyncio.wait_for(scenario(), 20) == [429, 200, 200, 200]


def test_anthropic_headers_on_messages(gateways: Gateways) -> None:
    host = gateways.hosts[0]
    client = anthropic.Anthropic(
        base_url=f"{host.url}/resource_server/alpha/vllm", api_key=gateways.key, max_retries=0
    )
    raw = client.messages.with_raw_response.create(
        model="cut-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    headers = raw.headers
    assert headers["anthropic-ratelimit-tokens-limit"] == "5000"
    assert 0 < int(headers["anthropic-ratelimit-tokens-remaining"]) < 5000
    reset = datetime.fromisoformat(headers["anthropic-ratelimit-tokens-reset"])
    assert reset.tzinfo is not None and reset >= datetime.now(UTC).replace(microsecond=0)
    assert "x-ratelimit-limit-tokens" not in headers


def test_anthropic_refusal_is_a_rate_limit_error(gateways: Gateways) -> None:
    host = gateways.hosts[0]
    client = anthropic.Anthropic(
        base_url=f"{host.url}/resource_server/alpha/vllm", api_key=gateways.key, max_retries=0
    )
    with pytest.raises(anthropic.RateLimitError) as caught:
        for _ in range(12):
            client.messages.create(
                model="rpm-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
