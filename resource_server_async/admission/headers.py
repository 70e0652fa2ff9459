"""The rate-limit headers of an answer, as OpenAI and Anthropic send them.

OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the reset being the time until
the bucket is full again, as a Go-style duration ("6m0s", "1.5s", "20ms"). Anthropic
(`/v1/messages`): `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, the reset an
RFC 3339 time. When several limits of a kind apply (the user's and the model's), the headers
describe the one with the least left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from resource_server_async.admission.limiter import Bucket, Decision, Kind, Level

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


def _tightest(
    buckets: tuple[Bucket, ...], decision: Decision, kind: Kind
) -> tuple[Bucket, Level] | None:
    found: tuple[Bucket, Level] | None = None
    for bucket, level in zip(buckets, decision.levels, strict=True):
        if bucket.kind == kind and (found is None or level.remaining < found[1].remaining):
            found = (bucket, level)
    return found


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
_KINDS: tuple[Kind, ...] = ("requests", "tokens")


def rate_limit_headers(buckets: tuple[Bucket, ...], decision: Decision, anthropic: bool) -> Headers:
    headers: Headers = []
    now = datetime.now(UTC) if anthropic else None
    for kind in _KINDS:
        found = _tightest(buckets, decision, kind)
        if found is None:
            continue
        bucket, level = found
        limit, remaining = b"%d" % bucket.capacity, b"%d" % level.remaining
        if now is not None:
            at = (now + timedelta(seconds=level.reset)).isoformat(timespec="seconds")
            names = _ANTHROPIC[kind]
            reset = at.replace("+00:00", "Z").encode()
        else:
            names = _OPENAI[kind]
            reset = openai_duration(level.reset).encode()
        headers += ((names[0], limit), (names[1], remaining), (names[2], reset))
    return headers
