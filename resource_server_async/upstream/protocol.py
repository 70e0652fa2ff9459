"""The protocol of the pooled upstream connections: aiohttp's, without a parse of nothing per read.

aiohttp's StreamReader calls `resume_reading()` after every read that leaves its buffer under the
low-water mark, whether or not reading was paused; the protocol then feeds its parser `b""` (to
parse what a pause held back) and resumes a transport that was never paused. For an open stream that
is every relayed chunk: a second `data_received` per chunk, and a transport's resume for nothing
(bench/stream_callgrind.py: 48.2k and 50.1k instructions per relayed chunk in two runs with them,
44.6k without). Checked in aiohttp 3.14's code (client_proto.py, _http_parser.pyx,
base_protocol.py): the parser holds unparsed bytes (its tail, a paused decompression, a pending end)
only after a pause from the payload, which sets `_reading_paused`; `_buffer_paused` is the hold of
an upgraded connection's tail. With both false there is nothing to resume, so nothing is done;
otherwise aiohttp's own resume runs unchanged.
"""

from __future__ import annotations

import asyncio
import functools

import aiohttp
from aiohttp.client_proto import ResponseHandler


class UpstreamResponseHandler(ResponseHandler):
    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._reading_paused or self._buffer_paused:
            super().resume_reading(resume_parser)


def use_upstream_protocol(connector: aiohttp.BaseConnector) -> None:
    """Make `connector` (made on the running loop) open its connections with
    UpstreamResponseHandler."""
    loop = asyncio.get_running_loop()
    # aiohttp has no public hook for the protocol; `_factory` is what the connector calls for
    # each new connection (tests/upstream/test_protocol.py fails if that changes).
    connector._factory = functools.partial(UpstreamResponseHandler, loop=loop)  # type: ignore[assignment]
