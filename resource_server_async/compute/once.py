"""Work the SDKs redo on every call that gives the same answer for the life of a process.

Profiled at one task at a time (bench/RESULTS.md, Globus Compute path): the Compute SDK's
`Client.create_batch()` describes the Python runtime afresh for each batch, and
`platform.architecture()` in that description starts a `file` subprocess (about 2 ms of CPU per
submission); requests looks up the proxy environment twice per call (os.environ scanned three
times, about half the CPU of a status call). Both are computed here once, with the same result.
"""

from __future__ import annotations

import requests
from globus_compute_sdk.sdk.batch import Batch, UserRuntime, create_user_runtime
from globus_compute_sdk.serialize import ComputeSerializer
from globus_sdk.transport import RequestsTransport


def runtime() -> UserRuntime:
    """The runtime description every batch carries (blocking: it runs `file` once)."""
    return create_user_runtime()


def new_batch(serializer: ComputeSerializer, user_runtime: UserRuntime) -> Batch:
    """What `Client.create_batch()` returns with its defaults, without describing the runtime
    again: the payload sent is the same."""
    return Batch(None, serializer=serializer, user_runtime=user_runtime)


def pinned_transport(base_url: str, timeout: float) -> RequestsTransport:
    """A transport for one service whose proxy is read from the environment once, for its
    address (HTTPS_PROXY, NO_PROXY...), instead of on every request: the environment of a
    running process does not change."""
    transport = RequestsTransport(http_timeout=timeout)
    session = transport.session
    proxies = requests.utils.resolve_proxies(
        requests.Request("GET", base_url).prepare(), session.proxies, trust_env=True
    )
    session.trust_env = False
    session.proxies = proxies
    return transport
