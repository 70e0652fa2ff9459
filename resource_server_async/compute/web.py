"""The two hot Globus Compute routes (submit, batch status) called with aiohttp on the event loop.

Each task costs one submission and at least one status poll. Through the synchronous SDK, each
call was two hand-offs between the loop and a thread plus requests' request building: most of
the gateway's CPU per task (bench/RESULTS.md). Here the request is the one the SDK sends (its
URL, headers, orjson body; the Authorization header from the same authorizer), and a failure
becomes the exception the SDK would have raised (a ComputeAPIError parsed by the SDK itself,
a NetworkError), so the executor maps both the same way. Everything else (sign-in, endpoint
status, function registration) stays on the SDK, in threads.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import globus_sdk
import orjson
import requests
from globus_sdk.authorizers.renewing import EXPIRES_ADJUST_SECONDS, RenewingAuthorizer
from globus_sdk.transport import RequestsTransport
from requests.structures import CaseInsensitiveDict

from resource_server_async.upstream.bounded_read import read_at_most


@dataclass(frozen=True, slots=True)
class ServiceAddress:
    """Where and how the SDK's Compute transport sends its calls, read from it once."""

    base_url: str
    headers: Mapping[str, str]  # the transport's own: Accept, User-Agent, X-Globus-Client-Info
    proxy: str | None
    verify: bool | str  # the transport's verify_ssl: on, off, or a CA bundle path

    @classmethod
    def of(cls, base_url: str, transport: RequestsTransport) -> ServiceAddress:
        """The address of `transport` (once.pinned_transport: its proxy already resolved)."""
        proxy = requests.utils.select_proxy(base_url, transport.session.proxies)
        return cls(base_url, dict(transport.headers), proxy, transport.verify_ssl)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


def current_header(authorizer: RenewingAuthorizer[Any]) -> str | None:
    """The authorizer's "Bearer ..." header if its token is good for the SDK's own margin, else
    None: then renewing it is a blocking call to Globus Auth, which belongs in a thread
    (`get_authorization_header()` there renews it on exactly this condition)."""
    token, expires_at = authorizer.access_token, authorizer.expires_at
    if token is None or expires_at is None:
        return None
    if time.time() > expires_at - EXPIRES_ADJUST_SECONDS:
        return None
    return f"Bearer {token}"


def _ssl_setting(verify: bool | str) -> ssl.SSLContext | bool:
    if verify is False:
        return False
    # requests (the SDK's transport, environment not trusted) verifies against certifi's bundle.
    bundle = verify if isinstance(verify, str) else requests.utils.DEFAULT_CA_BUNDLE_PATH
    return ssl.create_default_context(cafile=bundle)


def api_error(
    method: str, url: str, status: int, reason: str, headers: Mapping[str, str], body: bytes
) -> globus_sdk.ComputeAPIError:
    """The error the SDK raises for this answer, parsed by the SDK (code, message, ...): only on
    the failure path, so its requests.Response costs nothing on the hot one."""
    answer = requests.Response()
    answer.status_code = status
    answer.reason = reason
    answer.url = url
    answer.headers = CaseInsensitiveDict(headers)
    answer._content = body
    # The SDK reads the request's method and the scheme of its Authorization, never the token.
    answer.request = requests.Request(method, url, headers={"Authorization": "Bearer"}).prepare()
    return globus_sdk.ComputeAPIError(answer)


class AnswerTooLarge(Exception):
    """The service's answer was longer than the gateway holds (COMPUTE_MAX_ANSWER_BYTES); it
    was not read whole."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Globus Compute's answer is larger than COMPUTE_MAX_ANSWER_BYTES ({limit} bytes)"
        )
        self.limit = limit


class ComputeWeb:
    """One credential set's connections to the Compute service: a pooled aiohttp session,
    created on first use (on the loop), with `timeout` on every call, at most `connections`
    open, and no answer read past `max_answer` bytes."""

    def __init__(self, timeout: float, connections: int, max_answer: int) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connections = max(1, connections)
        self._max_answer = max_answer
        self._session: aiohttp.ClientSession | None = None

    def _http(self, address: ServiceAddress) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connections, ssl=_ssl_setting(address.verify), ttl_dns_cache=300
            )
            # The proxy was resolved once (ServiceAddress.of); the environment is not read again.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False
            )
        return self._session

    async def submit(
        self, address: ServiceAddress, authorization: str, endpoint_uuid: str, batch: Any
    ) -> Any:
        """`POST /v3/endpoints/{endpoint_uuid}/submit` (ComputeClientV3.submit)."""
        path = f"/v3/endpoints/{endpoint_uuid}/submit"
        return await self._post(address, authorization, path, batch)

    async def batch_status(
        self, address: ServiceAddress, authorization: str, task_ids: list[str]
    ) -> Any:
        """`POST /v2/batch_status` (ComputeClientV2.get_task_batch)."""
        return await self._post(address, authorization, "/v2/batch_status", {"task_ids": task_ids})

    async def _post(
        self, address: ServiceAddress, authorization: str, path: str, document: Any
    ) -> Any:
        """The answer's JSON (None if it is not JSON, as the SDK's `.data`). Raises the SDK's
        ComputeAPIError for a 4xx/5xx, GlobusConnectionError when the service cannot be
        reached, TimeoutError after the timeout, AnswerTooLarge past `max_answer` bytes."""
        url = address.url(path)
        headers = {
            "Content-Type": "application/json",
            **address.headers,
            "Authorization": authorization,
        }
        try:
            async with self._http(address).post(
                url, data=orjson.dumps(document), headers=headers, proxy=address.proxy
            ) as answer:
                body = await read_at_most(answer, self._max_answer)
                if body is None:
                    raise AnswerTooLarge(self._max_answer)
                if not 200 <= answer.status < 400:
                    raise api_error(
                        "POST", url, answer.status, answer.reason or "", answer.headers, body
                    )
        except TimeoutError:
            raise  # aiohttp's timeouts are ClientErrors too: the caller says how long it waited
        except aiohttp.ClientError as exc:
            raise globus_sdk.GlobusConnectionError(str(exc), exc) from None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return None

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
