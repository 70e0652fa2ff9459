"""Endpoint adapter for directly reachable OpenAI-compatible model servers."""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, ClassVar, Literal

import aiohttp
import orjson
from django.conf import settings
from pydantic import Field, field_validator, model_validator

from resource_server_async import runtime
from resource_server_async.catalog.adapter_config import AdapterConfig, check_http_url
from resource_server_async.clusters.status_page import LIVE, status_page_of
from resource_server_async.endpoints.base import BaseEndpoint, InferenceRequest, UpstreamReply
from resource_server_async.endpoints.tokenizer import TokenizerConfig
from resource_server_async.errors import GatewayError
from resource_server_async.upstream import errors as upstream_errors
from resource_server_async.upstream.bounded_read import read_at_most
from resource_server_async.upstream.clients import BackendTLS, PoolWait, api_base, origin_of
from resource_server_async.upstream.stream_reads import StreamReads

if TYPE_CHECKING:
    from resource_server_async.clusters.base import BaseCluster
    from resource_server_async.endpoints.base import EndpointRow


class DirectAPIEndpointConfig(AdapterConfig):
    api_url: str = Field(description="base URL of an OpenAI-compatible server")
    api_key_env_name: str | None = Field(
        default=None, description="name of the environment variable that holds the server's key"
    )
    api_request_timeout: float = Field(default=120.0, gt=0, description="seconds")
    # Anthropic Messages (resource_server_async/messages_api.py): "native" passes requests
    # through, "translate" sends them as chat/completions, "auto" tries native first.
    messages_api: Literal["auto", "native", "translate"] = Field(
        default="auto", description="how Anthropic Messages requests reach this server"
    )
    # Anthropic count_tokens on a server without Messages (endpoints/tokenizer.py).
    tokenizer: TokenizerConfig = Field(
        default_factory=TokenizerConfig, description="the server's tokenizer route"
    )
    # The Responses API (inference/responses_api.py), the same three ways; translated, hosted
    # tools (web_search...) are dropped, or refused with 400.
    responses_api: Literal["auto", "native", "translate"] = Field(
        default="auto", description="how OpenAI Responses requests reach this server"
    )
    responses_hosted_tools: Literal["drop", "refuse"] = Field(
        default="drop", description="translated Responses: hosted tools dropped or refused"
    )
    # Off for a server that refuses `stream_options` (learned anyway after its first 400):
    # its streams' tokens are then estimated (accounting/stream_usage.py).
    stream_include_usage: bool = Field(
        default=True, description="ask the server for usage in streams the client did not"
    )
    # TLS to an https:// server with its own trust (upstream/clients.py): a private CA, and a
    # client certificate for mutual TLS (a login-node proxy in front of the model servers).
    ca_cert_path: str | None = Field(
        default=None, description="PEM file of the CAs to trust instead of the system's"
    )
    client_cert_path: str | None = Field(
        default=None, description="PEM client certificate (mutual TLS)"
    )
    client_key_path: str | None = Field(
        default=None, description="PEM key of the client certificate, if not in its file"
    )
    check_hostname: bool = Field(
        default=True, description="false: accept any server name (the chain is still checked)"
    )

    @model_validator(mode="after")
    def _key_needs_certificate(self) -> DirectAPIEndpointConfig:
        if self.client_key_path and not self.client_cert_path:
            raise ValueError("client_key_path needs client_cert_path (the certificate it signs)")
        return self

    def tls(self) -> BackendTLS:
        return BackendTLS(
            self.ca_cert_path, self.client_cert_path, self.client_key_path, self.check_hostname
        )

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value)


# An error answer is only read for its message (cut to 1000 characters): never more than this.
_ERROR_BODY_BYTES = 64 * 1024


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _read_error_body(response: aiohttp.ClientResponse) -> bytes:
    """The start of a non-2xx answer; the rest is dropped with the connection."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size < _ERROR_BODY_BYTES:
            chunk = await response.content.read(_ERROR_BODY_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (TimeoutError, aiohttp.ClientError):
        pass  # the status alone makes the error
    if not response.content.at_eof():
        response.close()
    return b"".join(chunks)


class DirectAPIEndpoint(BaseEndpoint):
    """POSTs the client's body, byte for byte, to `{api_url}/v1/{operation}` over a pooled
    connection, and hands back the answer or the event stream as it arrives."""

    Config = DirectAPIEndpointConfig
    # Metis sets this: its models may only be called while "Live" in the cluster's status.
    requires_status_page: ClassVar[bool] = False

    def __init__(self, row: EndpointRow, config: AdapterConfig, cluster: BaseCluster) -> None:
        super().__init__(row, config, cluster)
        assert isinstance(config, DirectAPIEndpointConfig)
        self.base_url = api_base(config.api_url)
        self._origin = origin_of(self.base_url)
        self._key_name = config.api_key_env_name
        self._tls = config.tls()
        self._seconds = config.api_request_timeout
        connect = min(settings.UPSTREAM_CONNECT_TIMEOUT, self._seconds)
        self._pool_wait = min(settings.UPSTREAM_POOL_WAIT_SECONDS, self._seconds)
        # aiohttp's `connect` bounds the wait for a free pooled connection plus connecting;
        # without it a call waits without limit once every connection is in use.
        acquire = min(self._pool_wait + connect, self._seconds)
        self._call_timeout = aiohttp.ClientTimeout(
            total=self._seconds, connect=acquire, sock_connect=connect
        )
        # A stream may run for long; what must not happen is a silence longer than the timeout.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=acquire, sock_connect=connect, sock_read=self._seconds
        )
        self._max_answer = settings.UPSTREAM_MAX_RESPONSE_BYTES

    @classmethod
    def environment_problems(cls, config: AdapterConfig) -> list[str]:
        assert isinstance(config, DirectAPIEndpointConfig)
        problems = []
        name = config.api_key_env_name
        if name and not os.environ.get(name):
            problems.append(
                f"environment variable {name} (config.api_key_env_name) is not set: "
                "requests to this endpoint will be refused until it is"
            )
        for key in ("ca_cert_path", "client_cert_path", "client_key_path"):
            path = getattr(config, key)
            if path and not os.path.isfile(path):
                problems.append(f"config.{key} {path!r} is not a file on this machine")
        return problems

    def _session(self) -> aiohttp.ClientSession:
        """The server's pooled session; 503 when its TLS files cannot be loaded."""
        try:
            return runtime.current.upstream.session(self._origin, self._tls)
        except (OSError, ssl.SSLError) as exc:
            raise GatewayError(
                503,
                "endpoint_tls_unusable",
                f"The gateway cannot call model {self.model!r} on cluster {self.row.cluster!r}: "
                f"its TLS certificates cannot be loaded ({exc}). Ask the gateway operator.",
                info=upstream_errors.endpoint_info(self),
            ) from None

    def url_for(self, operation: str) -> str:
        return f"{self.base_url}/v1/{operation}"

    def _key(self) -> str | None:
        """The server's key, read at request time; a configured but unset variable is refused
        rather than sending an empty key the server would answer with a confusing 401."""
        if not self._key_name:
            return None
        key = os.environ.get(self._key_name, "").strip()
        if not key:
            raise GatewayError(
                503,
                "endpoint_key_missing",
                f"The gateway cannot call model {self.model!r} on cluster {self.row.cluster!r}: "
                f"the environment variable {self._key_name} that holds its API key is not set. "
                "Ask the gateway operator to set it.",
                info=upstream_errors.endpoint_info(self),
            )
        return key

    @staticmethod
    def _headers(key: str | None) -> dict[str, str]:
        if key is None:
            return {"Content-Type": "application/json"}
        return {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    async def _require_live(self) -> None:
        page = status_page_of(self.cluster)
        if page is None:
            if self.requires_status_page:
                raise GatewayError(
                    503,
                    "cluster_status_unavailable",
                    f"Model {self.model!r} needs a status page on cluster {self.row.cluster!r}, "
                    "and the cluster has none (config.status_url). Ask the gateway operator.",
                    info=upstream_errors.endpoint_info(self),
                )
            return
        state = await page.state_of(self.model)
        if state is None or state.lower() != LIVE:
            raise upstream_errors.not_live(self, state or "not listed")

    async def lists_model(self, timeout: float) -> bool:
        """Whether `GET {api_url}/v1/models` lists this endpoint's model (CONTRACT.md §1): the
        live-state probe of a server without a status page. Raises GatewayError (key unset) or
        aiohttp.ClientError / TimeoutError when the server does not answer."""
        session = self._session()
        async with session.get(
            self.url_for("models"),
            headers=self._headers(self._key()),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            if response.status != 200:
                return False
            body = await self._read_answer(response)
        try:
            listed = orjson.loads(body).get("data")
        except (ValueError, AttributeError):
            return False
        wanted = self.model.lower()
        return isinstance(listed, list) and any(
            isinstance(item, dict) and str(item.get("id", "")).lower() == wanted for item in listed
        )

    def _call_failed(self, exc: TimeoutError | aiohttp.ClientError, pool: PoolWait) -> GatewayError:
        """A call that got no answer, as the caller's error: 503 busy (no free pooled
        connection), 504 timed out, 503 unreachable, 502 anything else (connection dropped,
        malformed answer)."""
        # A timeout first: aiohttp's own timeouts are ClientErrors as well.
        if isinstance(exc, TimeoutError):
            if pool.waiting:
                return upstream_errors.busy(self, self._pool_wait)
            return upstream_errors.timed_out(self, self._seconds)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return upstream_errors.unreachable(self)
        return upstream_errors.broken(self, _reason(exc))

    async def _read_answer(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole answer, but never more than UPSTREAM_MAX_RESPONSE_BYTES of it: past the
        limit the connection is dropped rather than the rest read into memory."""
        body = await read_at_most(response, self._max_answer)
        if body is None:
            raise upstream_errors.response_too_large(self, self._max_answer)
        return body

    async def complete(self, request: InferenceRequest) -> UpstreamReply:
        try:
            return await self._complete(request)
        except GatewayError as error:
            raise upstream_errors.report(error, self, request.request_id) from None

    async def _complete(self, request: InferenceRequest) -> UpstreamReply:
        key = self._key()
        await self._require_live()
        session = self._session()
        pool = PoolWait()
        request.calling(self)
        outcome = request.outcome
        try:
            async with session.post(
                self.url_for(request.operation),
                data=request.raw,
                headers=self._headers(key),
                timeout=self._call_timeout,
                trace_request_ctx=pool,
            ) as response:
                if outcome is not None:
                    outcome.first_byte = time.perf_counter()
                status = response.status
                content_type = response.content_type
                if 200 <= status < 300:
                    body = await self._read_answer(response)
                else:
                    body = await _read_error_body(response)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._call_failed(exc, pool) from None
        if outcome is not None:
            outcome.upstream_answered = time.perf_counter()
        if not 200 <= status < 300:
            raise upstream_errors.reply_error(status, body, self, key)
        return UpstreamReply(status, body, content_type)

    async def open_stream(self, request: InferenceRequest) -> AsyncIterator[bytes]:
        # Failures before the stream starts are logged here; those after, by the relay.
        try:
            return await self._open_stream(request)
        except GatewayError as error:
            raise upstream_errors.report(error, self, request.request_id) from None

    async def _open_stream(self, request: InferenceRequest) -> AsyncIterator[bytes]:
        key = self._key()
        await self._require_live()
        session = self._session()
        pool = PoolWait()
        request.calling(self)
        try:
            response = await session.post(
                self.url_for(request.operation),
                data=request.raw,
                headers=self._headers(key),
                timeout=self._stream_timeout,
                trace_request_ctx=pool,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._call_failed(exc, pool) from None
        if request.outcome is not None:
            request.outcome.upstream_answered = time.perf_counter()
        if not 200 <= response.status < 300:
            try:
                body = await _read_error_body(response)
            finally:
                response.release()
            raise upstream_errors.reply_error(response.status, body, self, key)
        media_type = _media_type(response)
        if media_type != "text/event-stream":
            response.close()
            raise upstream_errors.broken(self, f"it answered a stream request with {media_type!r}")
        return StreamReads(response, self, self._seconds, request.outcome)


def _media_type(response: aiohttp.ClientResponse) -> str:
    """The answer's media type, as `response.content_type` says it, without what that property
    keeps on the response for its whole life (the parsed parameters: 1.6 kB per open stream)."""
    raw = response.headers.get("Content-Type")
    if raw is None:
        return "application/octet-stream"
    return raw.partition(";")[0].strip().lower()
