"""The base class of endpoint adapters, the immutable row they are built from, and a call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from resource_server_async.catalog.adapter_config import AdapterConfig
from resource_server_async.errors import GatewayError

if TYPE_CHECKING:
    from resource_server_async.accounting.outcome import RequestOutcome
    from resource_server_async.auth.principal import Principal
    from resource_server_async.clusters.base import BaseCluster


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """An endpoint as the catalog holds it: a snapshot of the database row."""

    slug: str
    cluster: str
    framework: str
    model: str
    adapter_path: str
    allowed_groups: frozenset[str] = field(default_factory=frozenset)
    allowed_domains: frozenset[str] = field(default_factory=frozenset)
    config: dict[str, Any] = field(default_factory=dict)
    # Admission limits (admission/limits.py); 0 = the gateway default.
    tpm_model: int = 0
    tpm_user: int = 0
    rpm_model: int = 0
    rpm_user: int = 0
    max_concurrent_user: int = 0
    max_concurrent: int = 0  # the server's capacity (fair share); 0 = no queue


@dataclass(slots=True)
class InferenceRequest:
    """One request to run on a model, after authentication, lookup and authorization."""

    operation: str  # "chat/completions", "completions", "embeddings", "responses", "messages"
    body: dict[str, Any]  # the client's JSON body; "model" is the name the backend serves
    raw: bytes  # the same body as JSON bytes, as the model server must receive it
    principal: Principal
    request_id: str
    stream: bool = False
    # Filled in as the call runs (endpoint, timings, tokens); None outside a captured request.
    outcome: RequestOutcome | None = None
    # The body and bytes without the `stream_options` the gateway added to learn the usage
    # (accounting/stream_usage.py); None when it added none.
    plain: tuple[dict[str, Any], bytes] | None = None

    def calling(self, endpoint: BaseEndpoint) -> None:
        """Note on the outcome that `endpoint`'s server is being called now."""
        if self.outcome is not None:
            row = endpoint.row
            self.outcome.calling(row.slug, row.cluster, row.framework, row.model)


@dataclass(slots=True)
class UpstreamReply:
    """A complete (non-streaming) answer from a model server: status, body bytes, content type."""

    status: int
    body: bytes
    content_type: str = "application/json"


class BaseEndpoint:
    """An endpoint adapter. Subclasses declare `Config` and implement `complete`/`open_stream`."""

    Config: ClassVar[type[AdapterConfig]] = AdapterConfig

    def __init__(self, row: EndpointRow, config: AdapterConfig, cluster: BaseCluster) -> None:
        self.row = row
        self.config = config
        self.cluster = cluster
        # The x-served-by header's value, made once rather than per answer.
        self.served_by = f"{row.cluster}/{row.framework}".encode("latin-1", "replace")

    @property
    def slug(self) -> str:
        return self.row.slug

    @property
    def model(self) -> str:
        return self.row.model

    @classmethod
    def environment_problems(cls, config: AdapterConfig) -> list[str]:
        """Warnings about this machine's environment for a valid config (e.g. an unset variable)."""
        return []

    async def complete(self, request: InferenceRequest) -> UpstreamReply:
        """Run one non-streaming request and return the model server's answer."""
        raise GatewayError(
            501,
            "operation_not_supported",
            f"{type(self).__name__} cannot serve {request.operation} for model {self.row.model!r}",
        )

    async def open_stream(self, request: InferenceRequest) -> AsyncIterator[bytes]:
        """Start a streaming request; raise GatewayError before returning if it cannot start.

        The returned iterator yields raw SSE bytes as they arrive from the model server.
        """
        raise GatewayError(
            501,
            "streaming_not_supported",
            f"{type(self).__name__} cannot stream {request.operation} for model {self.row.model!r}",
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.row.slug}>"
