"""uvicorn's httptools HTTP protocol with a bound on the request line and headers (431 beyond).

httptools keeps the request line and headers in memory until they end, without a limit: four
connections sending 50 MB of headers took a worker from 86 to 338 MB. Serve with

    python -m inference_gateway.serve inference_gateway.asgi:application \
        --http inference_gateway.server:HttpToolsProtocol

(uvicorn imports a `module:Class` value of --http as the protocol class). The bound is the
setting MAX_REQUEST_HEADER_BYTES; the reverse proxy should cap headers too (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from django.conf import settings
from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl
from uvicorn.server import ServerState

_REFUSAL = orjson.dumps(
    {
        "error": {
            "message": "The request line and headers are larger than this gateway accepts.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_headers_too_large",
        }
    }
)


# The phase of the request being read, in `_header_bytes` beside the count (>= 0: headers
# not ended yet, that many bytes so far): one attribute, not five. uvicorn's protocol sets 28
# attributes (`url` with the first request); CPython 3.11 shares an instance's attribute keys
# (and keeps its values inline) only up to 29, beyond which each connection carries a dict of
# its own: measured, 1.3 kB more per open connection (4.5 kB instead of 3.2).
_IN_BODY = -1  # the headers ended; the body is not counted
_ENDED_IN_READ = -2  # a request ended inside this read: the rest was its body, not headers
_REFUSED = -3  # answered 431; nothing more is read


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """Counts the bytes of each request's line and headers; past the limit, answers 431 and
    closes the connection without reading (or keeping) the rest.

    Two checks, both cheap: while the headers have not ended, every byte received counts (so
    memory stays within the limit plus one read); when they end, their exact size is summed
    (a few additions per request), which catches headers that arrived in one read.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._header_bytes = 0

    @property
    def max_header_bytes(self) -> int:
        # A class-level read of the setting (Django caches it), not a 29th attribute.
        limit: int = settings.MAX_REQUEST_HEADER_BYTES
        return limit

    def data_received(self, data: bytes) -> None:
        if self._header_bytes == _REFUSED:
            return
        if self._header_bytes == _ENDED_IN_READ:
            self._header_bytes = 0  # the next request's headers, from this read on
        super().data_received(data)
        if self._header_bytes >= 0:
            # The whole read belonged to headers that have not ended yet.
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._header_bytes = _REFUSED
        if self._header_bytes == _REFUSED:
            self._send_431()

    def on_headers_complete(self) -> None:
        if self._header_bytes == _REFUSED:
            return
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if size > self.max_header_bytes:
            # No application call; data_received answers once the parser returns.
            self._header_bytes = _REFUSED
            return
        self._header_bytes = _IN_BODY
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._header_bytes != _REFUSED:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._header_bytes == _REFUSED:
            return
        super().on_message_complete()
        self._header_bytes = _ENDED_IN_READ

    def _send_431(self) -> None:
        self.logger.info("Request headers larger than %d bytes refused.", self.max_header_bytes)
        content = [httptools_impl.STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(_REFUSAL)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
                _REFUSAL,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
