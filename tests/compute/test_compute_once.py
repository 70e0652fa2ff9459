"""The SDK work done once per process gives what the SDK computes on every call."""

from __future__ import annotations

import types

import pytest
import requests
from globus_compute_sdk import Client
from globus_compute_sdk.serialize import ComputeSerializer

from resource_server_async.compute import once

FUNCTION = "a9d3c2b1-0e4f-4a6b-8c7d-1f2e3d4c5b6a"


def test_a_batch_carries_what_create_batch_would_send() -> None:
    serializer = ComputeSerializer()
    ours = once.new_batch(serializer, once.runtime())
    theirs = Client.create_batch(types.SimpleNamespace(fx_serializer=serializer))
    for batch in (ours, theirs):
        batch.add(FUNCTION, ({"model_params": {"model": "m"}},))
        batch.add(FUNCTION, ({"model_params": {"model": "n"}},))
    assert ours.prepare() == theirs.prepare()
    assert ours.prepare()["user_runtime"]["platform"]["architecture"]


@pytest.mark.parametrize(
    ("url", "proxied"),
    [("https://compute.api.globus.org", True), ("http://127.0.0.1:8123", False)],
)
def test_the_proxy_is_the_one_requests_would_pick(
    monkeypatch: pytest.MonkeyPatch, url: str, proxied: bool
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    transport = once.pinned_transport(url, 5.0)
    expected = requests.utils.resolve_proxies(
        requests.Request("GET", url).prepare(), {}, trust_env=True
    )
    assert transport.session.trust_env is False
    assert transport.session.proxies == expected
    assert (expected.get("https") == "http://proxy.example:3128") is proxied
    assert transport.http_timeout == 5.0
