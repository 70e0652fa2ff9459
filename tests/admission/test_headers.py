"""The rate-limit headers read from a limiter's report (admission/headers.py): the tightest bucket
of each kind, debts shown as 0, the first of equals, OpenAI's durations and Anthropic's times."""

from __future__ import annotations

from datetime import UTC, datetime

from resource_server_async.admission import headers
from resource_server_async.admission.headers import rate_limit_headers
from resource_server_async.admission.limiter import Bucket, Decision

BUCKETS = (
    Bucket("u:r", 10, 1, "requests", "user"),
    Bucket("u:t", 1000, 40, "tokens", "user"),
    Bucket("m:r", 100, 1, "requests", "model"),
    Bucket("m:t", 5000, 40, "tokens", "model"),
)


def test_the_tightest_of_each_kind_with_debts_as_zero() -> None:
    # Redis's reply: refused_by + 1, wait, then per bucket units left and reset (ms).
    reply = [0, 0, 9, 6000, -30, 61_500, 9, 540, 4960, 480]
    headers = dict(rate_limit_headers(BUCKETS, Decision(-1, 0.0, reply, 2), anthropic=False))
    assert headers == {
        b"x-ratelimit-limit-requests": b"10",  # the user's: 9 left, first of the two equals
        b"x-ratelimit-remaining-requests": b"9",
        b"x-ratelimit-reset-requests": b"6s",
        b"x-ratelimit-limit-tokens": b"1000",  # the user's debt: 0 left
        b"x-ratelimit-remaining-tokens": b"0",
        b"x-ratelimit-reset-tokens": b"1m1.5s",
    }


def test_anthropic_names_and_a_reset_time() -> None:
    reported = [3, 2000.0]  # the in-process limiter's report of one bucket
    before = datetime.now(UTC).replace(microsecond=0)
    headers = dict(rate_limit_headers(BUCKETS[:1], Decision(-1, 0.0, reported), anthropic=True))
    assert headers[b"anthropic-ratelimit-requests-limit"] == b"10"
    assert headers[b"anthropic-ratelimit-requests-remaining"] == b"3"
    reset = datetime.fromisoformat(headers[b"anthropic-ratelimit-requests-reset"].decode())
    assert reset >= before and not any(b"tokens" in name for name in headers)


def test_the_durations_remembered_are_bounded() -> None:
    for ms in range(headers.DURATIONS_KEPT * 2):
        rate_limit_headers(BUCKETS[:1], Decision(-1, 0.0, [1, ms]), anthropic=False)
    assert 0 < len(headers._durations) <= headers.DURATIONS_KEPT
    reset = dict(rate_limit_headers(BUCKETS[:1], Decision(-1, 0.0, [1, 1500]), anthropic=False))
    assert reset[b"x-ratelimit-reset-requests"] == b"1.5s"
