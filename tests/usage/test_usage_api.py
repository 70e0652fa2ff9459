"""GET /resource_server/v1/usage through a real gateway, after real requests: it agrees with the
records and with `usage_report`; operators may ask for others; bad windows are refused."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import openai
import pytest

from resource_server_async.accounting.usage import FIELDS
from tests.accounting.records_db import fetch_records
from tests.servers import GatewayServer
from tests.usage.conftest import Keys
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

USER = "api_key:1"


def get_usage(gateway: GatewayServer, key: str, **params: str) -> httpx2.Response:
    return httpx2.get(
        f"{gateway.url}/resource_server/v1/usage",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def sums_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The usage rows computed here, from the records themselves."""
    rows: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    for record in records:
        received = record["received_at"]
        if isinstance(received, str):  # SQLite hands back text
            received = datetime.fromisoformat(received)
        row = rows[(received.astimezone(UTC).date().isoformat(), record["model"])]
        row["requests"] += 1
        row["errors"] += record["status"] >= 400
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            row[name] += record[name] or 0
    return [{"day": day, "model": model, **rows[(day, model)]} for day, model in sorted(rows)]


@pytest.fixture(scope="module")
def traffic(gateway: GatewayServer, keys: Keys) -> list[dict[str, Any]]:
    """Real requests by the user (successes, a stream, an upstream failure, two models) and one
    by another key; returns the user's records once all are written."""
    client = gateway.openai_client()
    ask = [{"role": "user", "content": "count these four words"}]
    for _ in range(3):
        client.chat.completions.create(model="fake-model", messages=ask)
    client.chat.completions.create(model="other-model", messages=ask, max_tokens=5)
    for _ in client.chat.completions.create(
        model="fake-model", messages=ask, stream=True, stream_options={"include_usage": True}
    ):
        pass
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="fake-model", messages=ask, extra_body={"fake": {"status": 500}}
        )
    other = gateway.openai_client()
    other.api_key = keys.other
    other.chat.completions.create(model="fake-model", messages=ask)
    url = gateway.env["DATABASE_URL"]
    wait_until(lambda: len(fetch_records(url)) >= 7)
    return fetch_records(url, "principal_id = ?", (USER,))


def test_usage_agrees_with_the_records(
    gateway: GatewayServer, keys: Keys, traffic: list[dict[str, Any]]
) -> None:
    assert len(traffic) == 6
    answer = get_usage(gateway, keys.user)
    assert answer.status_code == 200
    document = answer.json()
    today = datetime.now(UTC).date()
    assert document["principal"] == USER
    assert document["end"] == today.isoformat()
    assert document["start"] == (today - timedelta(days=29)).isoformat()  # USAGE_DEFAULT_DAYS
    expected = sums_of(traffic)
    assert document["data"] == expected
    assert [row["model"] for row in expected] == ["fake-model", "other-model"]
    fake = expected[0]
    assert (fake["requests"], fake["errors"]) == (5, 1)
    assert fake["prompt_tokens"] > 0 and fake["completion_tokens"] > 0
    assert document["total"] == {name: sum(row[name] for row in expected) for name in FIELDS}


def test_usage_report_prints_the_same_numbers(
    gateway: GatewayServer, keys: Keys, traffic: list[dict[str, Any]]
) -> None:
    api = get_usage(gateway, keys.user).json()
    today = datetime.now(UTC).date().isoformat()
    printed = gateway.manage(
        "usage_report", "--since", api["start"], "--until", today, "--by", "day", "--by",
        "model", "--principal", USER, "--format", "json",
    ).stdout  # fmt: skip
    report = json.loads(printed)
    assert report["data"] == api["data"]
    assert report["total"] == api["total"]
    everyone = json.loads(
        gateway.manage("usage_report", "--since", today, "--format", "json").stdout
    )
    by_user = {row["user"]: row for row in everyone["data"]}
    assert by_user[USER]["requests"] == api["total"]["requests"]
    assert by_user[USER]["username"] == "e2e"
    assert everyone["total"]["requests"] == len(fetch_records(gateway.env["DATABASE_URL"]))


def test_only_operators_may_ask_for_others(
    gateway: GatewayServer, keys: Keys, traffic: list[dict[str, Any]]
) -> None:
    refused = get_usage(gateway, keys.other, principal=USER)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "operator_only"
    assert get_usage(gateway, keys.other, group="physics").status_code == 403
    # Naming oneself is no reach at all.
    assert get_usage(gateway, keys.user, principal=USER).status_code == 200

    own = get_usage(gateway, keys.user).json()
    theirs = get_usage(gateway, keys.operator, principal=USER).json()
    assert theirs["data"] == own["data"]
    everyone = get_usage(gateway, keys.operator, principal="all").json()
    assert everyone["principal"] == "all"
    assert everyone["total"]["requests"] == own["total"]["requests"] + 1  # the other key's
    one_model = get_usage(gateway, keys.operator, principal="all", model="other-model").json()
    assert [row["model"] for row in one_model["data"]] == ["other-model"]


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({"start": "yesterday"}, "invalid_date", "start"),
        ({"end": "2026-13-01"}, "invalid_date", "end"),
        ({"start": "2026-11-30", "end": "2026-11-01"}, "invalid_window", "start"),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "window_too_long", "start"),
    ],
)
def test_bad_windows_are_refused_in_the_openai_shape(
    gateway: GatewayServer, keys: Keys, params: dict[str, str], code: str, param: str
) -> None:
    answer = get_usage(gateway, keys.user, **params)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == (code, param)


def test_a_window_without_requests_is_empty_and_unauthenticated_is_refused(
    gateway: GatewayServer, keys: Keys
) -> None:
    past = get_usage(gateway, keys.user, start="2020-01-01", end="2020-01-31").json()
    assert past["data"] == [] and past["total"] == dict.fromkeys(FIELDS, 0)
    assert httpx2.get(f"{gateway.url}/resource_server/v1/usage").status_code == 401
