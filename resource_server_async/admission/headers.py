"""The rate-limit headers of an answer, as OpenAI and Anthropic send them.

OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the reset being the time until
the bucket is full again, as a Go-style duration ("6m0s", "1.5s", "20ms"). Anthropic
(`/v1/messages`): `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, the reset an
RFC 3339 time. When several limits of a kind apply (the user's and the model's), the headers
describe the one with the least left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from resource_server_async.admission.limiter import Bucket, Decision

Headers = list[tuple[bytes, bytes]]


def openai_duration(seconds: float) -> str:
    # Whole milliseconds in integer arithmetic: a float's "%.3f" goes through C's printf, which
    # cost more than the rest of the headers together (callgrind).
    if seconds <= 0:
        return "0s"
    ms = round(seconds * 1000)
    if ms < 1000:
        return f"{ms or 1}ms"
    minutes, ms = divmod(ms, 60_000)
    whole, fraction = divmod(ms, 1000)
    text = f"{whole}.{fraction:03d}".rstrip("0") if fraction else f"{whole}"
    return f"{minutes}m{text}s" if minutes else f"{text}s"


# The names per kind, encoded once: (limit, remaining, reset).
_OPENAI = {
    kind: tuple(f"x-ratelimit-{part}-{kind}".encode() for part in ("limit", "remaining", "reset"))
    for kind in ("requests", "tokens")
}
_ANTHROPIC = {
    kind: tuple(
        f"anthropic-ratelimit-{kind}-{part}".encode() for part in ("limit", "remaining", "reset")
    )
    for kind in ("requests", "tokens")
}


class _Durations(dict[float, bytes]):
    """openai_duration of a reset in milliseconds, encoded, by its value: resets repeat (a
    bucket drained by one request), and a dictionary read costs a tenth of the formatting.
    At most DURATIONS_KEPT values; a full table starts afresh."""

    def __missing__(self, ms: float) -> bytes:
        text = openai_duration(ms / 1000).encode()
        if len(self) >= DURATIONS_KEPT:
            self.clear()
        self[ms] = text
        return text


DURATIONS_KEPT = 4096
_durations = _Durations()


def rate_limit_headers(buckets: tuple[Bucket, ...], decision: Decision, anthropic: bool) -> Headers:
    # The tightest bucket of each kind, by its place in the limiter's report (units left, then
    # the reset in ms; limiter.py), a debt counting as 0. Read from the report as it is, in
    # plain locals: this runs for every answer with limits.
    reported, first = decision.reported, decision.start
    requests_at = tokens_at = -1
    requests_left = tokens_left = 0.0
    at = first
    for bucket in buckets:
        left = reported[at]
        if left < 0:
            left = 0
        if bucket.kind == "requests":
            if requests_at < 0 or left < requests_left:
                requests_at, requests_left = at, left
        elif tokens_at < 0 or left < tokens_left:
            tokens_at, tokens_left = at, left
        at += 2
    names = _ANTHROPIC if anthropic else _OPENAI
    now = datetime.now(UTC) if anthropic else None
    headers: Headers = []
    for kind, at, left in (
        ("requests", requests_at, requests_left),
        ("tokens", tokens_at, tokens_left),
    ):
        if at < 0:
            continue
        limit, remaining, reset = names[kind]
        ms = reported[at + 1]
        headers += (
            (limit, b"%d" % buckets[(at - first) >> 1].capacity),
            (remaining, b"%d" % left),
            (reset, _durations[ms] if now is None else _at(now, ms)),
        )
    return headers


def _at(now: datetime, ms: float) -> bytes:
    """Anthropic's reset: the RFC 3339 time `ms` after `now`."""
    at = (now + timedelta(milliseconds=ms)).isoformat(timespec="seconds")
    return at.replace("+00:00", "Z").encode()
