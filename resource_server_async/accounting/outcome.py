"""What one inference request came to: filled along its path, accounted once at its end."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from resource_server_async.auth.principal import Principal


@dataclass(slots=True)
class RequestOutcome:
    """One per request on an inference route, refused ones included (accounting/__init__.py).

    Times: `received_at` is wall-clock (time.time()); `started`, `upstream_started`,
    `first_byte` and `ended` are time.perf_counter() values, so that durations are exact.
    """

    request_id: str
    received_at: float
    started: float
    route: str  # "cluster" | "federated"
    operation: str  # "chat/completions", "completions", "embeddings", "responses", "messages", ...
    client_address: str = ""
    principal_id: str = ""
    username: str = ""
    idp_domain: str = ""
    credential: str = ""  # "globus" | "api_key" | "" when unauthenticated
    api_key_id: int | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    project: str = ""  # the project charged (catalog/projects.py), "" for none
    cluster: str = ""
    framework: str = ""
    model: str = ""
    endpoint_slug: str = ""
    stream: bool = False
    status: int = 0
    error_code: str = ""
    upstream_started: float | None = None
    # When the server's answer came: the whole of it, or the start of its stream (Server-Timing).
    upstream_answered: float | None = None
    first_byte: float | None = None
    ended: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    usage_estimated: bool = False
    compute_task_id: str = ""
    response_time: float | None = None
    throughput_tokens_per_second: float | None = None
    disconnected: bool = False
    # The client has the stream's last event ([DONE] or the error event): a hang-up after it,
    # while the gateway drains the model server's stream to its end, loses nothing.
    last_event_sent: bool = False
    # What completes the record after the answer ended (a compute stream's task result, with
    # the function's timing); the capture accounts the request once it is done.
    settling: asyncio.Future[None] | None = None
    # Only when RECORD_PROMPTS is on (the capture fills them, bounded by RECORD_PROMPT_MAX_CHARS).
    prompt: str = ""
    answer: str = ""

    def calling(self, slug: str, cluster: str, framework: str, model: str) -> None:
        """The endpoint chosen (for federated requests, the last one tried) is being called."""
        self.endpoint_slug = slug
        self.cluster = cluster
        self.framework = framework
        self.model = model
        self.upstream_started = time.perf_counter()
        self.upstream_answered = self.first_byte = None

    def client_gone(self) -> None:
        """The client hung up; before the answer's end, that is what the record says."""
        if self.ended is None and not self.last_event_sent:
            self.disconnected = True

    def server_timing(self, now: float) -> bytes:
        """The Server-Timing header at the start of the answer: gateway time apart from the
        model server's (for a stream, up to its start), in milliseconds."""
        total = now - self.started
        if self.upstream_started is None:
            return b"gateway;dur=%.2f" % (total * 1000)
        upstream = (self.upstream_answered or now) - self.upstream_started
        return b"gateway;dur=%.2f, upstream;dur=%.2f" % (
            (total - upstream) * 1000,
            upstream * 1000,
        )

    @property
    def duration(self) -> float | None:
        """Seconds from receipt to the end of the answer."""
        return None if self.ended is None else self.ended - self.started

    @property
    def upstream_duration(self) -> float | None:
        """Seconds from the call to the model server to the end of its answer."""
        if self.upstream_started is None or self.ended is None:
            return None
        return self.ended - self.upstream_started

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from receipt to the first byte of the answer's body from the server."""
        return None if self.first_byte is None else self.first_byte - self.started

    def set_principal(self, principal: Principal) -> None:
        """Who asked (step 2); never the credential itself."""
        self.principal_id = principal.id
        self.username = principal.username
        self.idp_domain = principal.idp_domain
        self.groups = principal.groups
        if principal.kind == "api_key":
            self.credential = "api_key"
            _, _, pk = principal.id.partition(":")
            self.api_key_id = int(pk) if pk.isdigit() else None
        else:
            self.credential = "globus"

    def set_usage(
        self,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        total_tokens: int | None = None,
        cached_tokens: int | None = None,
        *,
        estimated: bool = False,
    ) -> None:
        """Token counts, as the server reported them (or as estimated from the text)."""
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
            total_tokens = prompt_tokens + completion_tokens
        self.total_tokens = total_tokens
        self.cached_tokens = cached_tokens
        self.usage_estimated = estimated
