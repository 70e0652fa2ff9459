"""Who may read /metrics: METRICS_TOKEN (constant time), allowed networks, closed by default."""

from __future__ import annotations

import ipaddress

import pytest
from django.test import override_settings

from inference_gateway import env
from resource_server_async.accounting.exposition import check_access
from resource_server_async.errors import GatewayError

TOKEN = "metrics-" + "k3y" * 8
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def refusal(host: str | None, authorization: str | None) -> tuple[int, str] | None:
    try:
        check_access(host, authorization)
    except GatewayError as error:
        return error.status, error.code
    return None


@override_settings(DEV_MODE=False, METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=())
def test_closed_outside_development_mode_when_nothing_is_set() -> None:
    assert refusal("127.0.0.1", None) == (404, "metrics_not_configured")
    assert refusal("127.0.0.1", f"Bearer {TOKEN}") == (404, "metrics_not_configured")


@override_settings(DEV_MODE=True, METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=())
def test_open_in_development_mode_when_nothing_is_set() -> None:
    assert refusal("192.0.2.7", None) is None


@override_settings(METRICS_ENABLED=False, DEV_MODE=True)
def test_off_answers_404() -> None:
    assert refusal("127.0.0.1", None) == (404, "metrics_disabled")


@override_settings(DEV_MODE=False, METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS=())
@pytest.mark.parametrize(
    "authorization",
    [None, "", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", "Bearer "],
)
def test_refused_without_its_token(authorization: str | None) -> None:
    assert refusal("127.0.0.1", authorization) == (401, "invalid_metrics_token")


@override_settings(DEV_MODE=False, METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS=())
def test_its_token_opens_it_from_anywhere() -> None:
    assert refusal("203.0.113.9", f"Bearer {TOKEN}") is None
    assert refusal("203.0.113.9", f"bearer  {TOKEN}") is None


@override_settings(DEV_MODE=False, METRICS_TOKEN="", METRICS_ALLOWED_NETWORKS=LOOPBACK)
def test_networks_alone_open_it_to_their_addresses_only() -> None:
    assert refusal("127.0.0.1", None) is None
    assert refusal("10.1.2.3", None) == (403, "metrics_forbidden")
    assert refusal(None, None) == (403, "metrics_forbidden")  # a Unix socket: no address
    assert refusal("::1", None) == (403, "metrics_forbidden")


@override_settings(DEV_MODE=False, METRICS_TOKEN=TOKEN, METRICS_ALLOWED_NETWORKS=LOOPBACK)
def test_with_both_set_both_are_needed() -> None:
    assert refusal("127.0.0.1", f"Bearer {TOKEN}") is None
    assert refusal("127.0.0.1", None) == (401, "invalid_metrics_token")
    assert refusal("10.1.2.3", f"Bearer {TOKEN}") == (403, "metrics_forbidden")


def test_a_bad_network_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8 not-a-network")
    with pytest.raises(env.ConfigurationError, match="'not-a-network' is not an IP address"):
        env.get_networks("METRICS_ALLOWED_NETWORKS")
    monkeypatch.setenv("METRICS_ALLOWED_NETWORKS", "10.0.0.0/8; ::1, 192.168.1.7")
    assert [str(n) for n in env.get_networks("METRICS_ALLOWED_NETWORKS")] == [
        "10.0.0.0/8",
        "::1/128",
        "192.168.1.7/32",
    ]
