"""One pooled aiohttp client session per model server, created on first use, closed at shutdown.

A server reached over TLS with its own trust (a private CA, a client certificate for mutual TLS
to a login-node proxy) gets a pool of its own: one SSL context per (origin, TLS settings), built
once with the pool, so the handshake's set-up never runs per request.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp
import orjson
from django.conf import settings

from resource_server_async.upstream.protocol import use_upstream_protocol


def origin_of(url: str) -> str:
    """`scheme://host:port` of a URL: every endpoint on one server shares that server's pool."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def api_base(api_url: str) -> str:
    """The server's base URL without a trailing `/` or `/v1`, so `{base}/v1/{operation}` works
    whichever of `http://h:8000`, `http://h:8000/`, `http://h:8000/v1` an operator wrote."""
    base = api_url.strip().rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base


@dataclass(frozen=True, slots=True)
class BackendTLS:
    """How to reach one HTTPS model server: whom to trust and what certificate to show."""

    ca_cert_path: str | None = None  # PEM bundle of the CAs to trust instead of the system's
    client_cert_path: str | None = None  # PEM certificate shown to the server (mutual TLS)
    client_key_path: str | None = None  # its key, when not in the certificate file
    check_hostname: bool = True  # False: any name, but the chain must still verify

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_cert_path)
        context.check_hostname = self.check_hostname
        if self.client_cert_path:
            context.load_cert_chain(self.client_cert_path, self.client_key_path)
        return context


DEFAULT_TLS = BackendTLS()


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


class PoolWait:
    """Passed as a call's `trace_request_ctx`: whether the call is waiting for a free pooled
    connection, so that a timeout there is told apart from a server that is slow to connect."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting = False


async def _queued(session: object, context: SimpleNamespace, params: object) -> None:
    if isinstance(context.trace_request_ctx, PoolWait):
        context.trace_request_ctx.waiting = True


async def _dequeued(session: object, context: SimpleNamespace, params: object) -> None:
    if isinstance(context.trace_request_ctx, PoolWait):
        context.trace_request_ctx.waiting = False


def _pool_wait_trace() -> aiohttp.TraceConfig:
    # aiohttp's documented signals for the pool queue; a timeout while queued never sends
    # the "end" signal, so `waiting` stays set. Cost measured on the shared 2-core machine:
    # about 13 us of CPU per call for the trace objects and empty signals aiohttp then sends.
    trace = aiohttp.TraceConfig()
    trace.on_connection_queued_start.append(_queued)
    trace.on_connection_queued_end.append(_dequeued)
    return trace


class UpstreamClients:
    """The runtime's sessions, one per origin; they belong to the loop the runtime serves."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, BackendTLS], aiohttp.ClientSession] = {}

    def session(self, origin: str, tls: BackendTLS = DEFAULT_TLS) -> aiohttp.ClientSession:
        session = self._sessions.get((origin, tls))
        if session is None:
            session = self._sessions[(origin, tls)] = self._new_session(tls)
        return session

    @staticmethod
    def _new_session(tls: BackendTLS) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=settings.UPSTREAM_MAX_CONNECTIONS,
            keepalive_timeout=settings.UPSTREAM_KEEPALIVE_SECONDS,
            ttl_dns_cache=300,
            # aiohttp's own default context unless this server has TLS settings of its own.
            ssl=True if tls == DEFAULT_TLS else tls.context(),
        )
        use_upstream_protocol(connector)
        return aiohttp.ClientSession(
            connector=connector,
            json_serialize=_dumps,
            # Endpoints pass their own timeout per call; this is only the fallback.
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=settings.UPSTREAM_CONNECT_TIMEOUT
            ),
            # Compressing on loopback or a cluster network costs CPU on both ends and delays
            # streamed chunks; ask servers not to.
            headers={"Accept-Encoding": "identity"},
            trust_env=False,
            trace_configs=[_pool_wait_trace()],
        )

    @property
    def origins(self) -> list[str]:
        return [origin for origin, _ in self._sessions]

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()
