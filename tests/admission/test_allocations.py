"""Allocations end to end: real gateway processes (two workers and a second host sharing Redis,
or one process counting in-process), the fake model server, projects and allocations set with
`manage.py allocations`, httpx and the official clients as callers.

The fake server counts a token per word: a chat of "hello" is 1 prompt token and the answer
"Echo: hello" 2, so every such request spends exactly 3 tokens.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from resource_server_async.admission.allocation_periods import period_bounds
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer, scratch_database
from tests.waiting import wait_until

MODELS = ("budget-model", "llama-model", "other-model", "durable-model")
TOKENS_PER_HELLO = 3


@dataclass
class Site:
    """The hosts (one, or two sharing Redis and the database) and the callers' keys."""

    hosts: list[GatewayServer] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    mode: str = "memory"
    prefix: str = ""

    def manage(self, *args: str) -> str:
        return self.hosts[0].manage(*args).stdout

    def post(
        self, who: str, model: str, *, index: int = 0, project: str | None = None, text: str = ""
    ) -> httpx2.Response:
        host = self.hosts[index % len(self.hosts)]
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        if project is not None:
            headers["x-project"] = project
        body = {"model": model, "messages": [{"role": "user", "content": text or "hello"}]}
        return httpx2.post(
            f"{host.url}/resource_server/alpha/vllm/v1/chat/completions",
            json=body,
            headers=headers,
            timeout=20,
        )

    def usage(self, who: str, index: int = 0) -> dict[str, Any]:
        host = self.hosts[index % len(self.hosts)]
        answer = httpx2.get(
            f"{host.url}/resource_server/v1/usage",
            headers={"Authorization": f"Bearer {self.keys[who]}"},
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
        return {a["allocation"]: a for a in answer.json()["allocations"]}

    def spent(self, name: str) -> dict[str, Any]:
        """`manage.py allocations spent NAME --json`: Redis's count, or the records'."""
        return json.loads(self.manage("allocations", "spent", name, "--json"))[0]


def _prepare(server: GatewayServer) -> dict[str, str]:
    """Keys, projects and allocations, before the gateway starts (as an operator would)."""
    keys = {
        "alice": server.create_api_key("alice", "--groups", "g-climate"),
        "bob": server.create_api_key("bob", "--groups", "g-climate"),
        "carol": server.create_api_key("carol"),
        "dan": server.create_api_key("dan"),
        "erin": server.create_api_key("erin"),
    }
    run = server.manage
    run("allocations", "project", "climate", "--group", "g-climate", "--order", "10")
    run("allocations", "project", "physics", "--key", "alice", "--order", "20")
    run("allocations", "project", "bio", "--default-for", "bob", "--order", "30")
    run("allocations", "project", "exact", "--key", "carol")
    run("allocations", "project", "llama", "--key", "dan")
    run("allocations", "project", "durable", "--key", "erin")
    budget = str(3 * TOKENS_PER_HELLO)
    run("allocations", "set", "climate-month", "--project", "climate", "--tokens", "1000")
    run("allocations", "set", "physics-month", "--project", "physics", "--tokens", "1000")
    run("allocations", "set", "bio-week", "--project", "bio", "--tokens", "1000")
    run("allocations", "set", "bio-week", "--period", "week", "--start-day", "1")
    run("allocations", "set", "exact-month", "--project", "exact", "--tokens", budget)
    run(
        "allocations",
        "set",
        "llama-only",
        "--project",
        "llama",
        "--tokens",
        str(2 * TOKENS_PER_HELLO),
        "--model",
        "llama-model",
    )
    run("allocations", "set", "durable-month", "--project", "durable", "--tokens", budget)
    return keys


@pytest.fixture(scope="module")
def backend() -> Iterator[FakeBackend]:
    with FakeBackend(models=MODELS) as server:
        yield server


@pytest.fixture(scope="module", params=["memory", "redis"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, backend: FakeBackend
) -> Iterator[Site]:
    mode = str(request.param)
    redis_url = os.environ.get("REDIS_URL", "")
    if mode == "redis" and not redis_url:
        pytest.skip("REDIS_URL is not set (the CI's second run sets it)")
    tmp = tmp_path_factory.mktemp(f"allocations-{mode}")
    files = CatalogFiles()
    files.cluster("alpha", operations=["chat/completions", "messages"])
    for model in MODELS:
        files.endpoint("alpha", model, backend.url, messages_api="translate")
    prefix = f"test-alloc:{uuid.uuid4().hex}:"
    with scratch_database(tmp) as database:
        env = {
            "DATABASE_URL": database,
            "REDIS_URL": redis_url if mode == "redis" else "",
            "ALLOCATIONS_REDIS_PREFIX": prefix,
            "ALLOCATIONS_RECONCILE_SECONDS": "0.5",
        }
        first = GatewayServer(tmp, fixtures=files.write(tmp / "fixtures"), env=env)
        first.manage("migrate", "--no-input", "-v0")
        keys = _prepare(first)
        found = Site(keys=keys, mode=mode, prefix=prefix)
        with GatewayServer(
            tmp, fixtures=first.fixtures, env=env, workers=2 if mode == "redis" else 1
        ) as gateway:
            found.hosts.append(gateway)
            if mode == "memory":
                yield found
                return
            (tmp / "second").mkdir()
            with GatewayServer(tmp / "second", env=env) as second:
                found.hosts.append(second)
                yield found


def _refusal(answer: httpx2.Response) -> dict[str, Any]:
    assert answer.status_code == 429, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == "allocation_exhausted"
    assert error["type"] == "rate_limit_error"
    return error


def test_spending_exactly_the_budget_then_429_until_the_period_renews(site: Site) -> None:
    # Three requests on alternating hosts spend the 9 tokens exactly: each is admitted while
    # something is left, and charged what the server reported once it ends.
    for index in range(3):
        answer = site.post("carol", "budget-model", index=index)
        assert answer.status_code == 200, answer.text
    refused = site.post("carol", "budget-model", index=3)
    error = _refusal(refused)
    now = datetime.now(UTC)
    _, renews = period_bounds("month", 1, now)
    assert "'exact-month'" in error["message"] and "'exact'" in error["message"]
    assert "9 tokens per month" in error["message"]
    assert error["info"]["renews_at"] == renews.strftime("%Y-%m-%dT%H:%M:%SZ")
    # Retry-After: whole seconds until the first of next month, right within a few seconds.
    assert abs(int(refused.headers["retry-after"]) - (renews - now).total_seconds()) < 5
    assert refused.headers["x-should-retry"] == "false"
    report = site.usage("carol", index=1)["exact-month"]
    assert report["tokens"] == {"budget": 9, "spent": 9, "remaining": 0}
    assert report["renews_at"] == renews.isoformat().replace("+00:00", "Z")
    # The records name the project: the operator's view agrees once they are written.
    wait_until(lambda: site.spent("exact-month")["tokens"]["spent"] == 9)


def test_a_per_model_budget_stops_only_that_model(site: Site) -> None:
    for index in range(2):
        assert site.post("dan", "llama-model", index=index).status_code == 200
    error = _refusal(site.post("dan", "llama-model", index=2))
    assert "on model 'llama-model'" in error["message"]
    for index in range(3):
        assert site.post("dan", "other-model", index=index).status_code == 200
    report = site.usage("dan")["llama-only"]
    assert report["model"] == "llama-model"
    assert report["tokens"]["remaining"] == 0


def test_a_principal_in_two_projects_is_charged_to_the_named_or_the_first(site: Site) -> None:
    before = site.usage("alice")
    assert set(before) == {"climate-month", "physics-month"}  # group climate, key physics
    climate = before["climate-month"]["tokens"]["spent"]
    physics = before["physics-month"]["tokens"]["spent"]
    # No header: the first project by (order, name) is climate.
    assert site.post("alice", "other-model").status_code == 200
    # Named: physics.
    assert site.post("alice", "other-model", index=1, project="physics").status_code == 200
    assert site.post("alice", "other-model", index=2, project="physics").status_code == 200
    after = site.usage("alice", index=1)
    assert after["climate-month"]["tokens"]["spent"] == climate + TOKENS_PER_HELLO
    assert after["physics-month"]["tokens"]["spent"] == physics + 2 * TOKENS_PER_HELLO


def test_a_keys_default_project_wins_over_the_order(site: Site) -> None:
    before = site.usage("bob")
    assert set(before) == {"climate-month", "bio-week"}
    assert before["bio-week"]["period"] == "week"
    assert site.post("bob", "other-model").status_code == 200
    after = site.usage("bob")
    assert after["bio-week"]["tokens"]["spent"] == (
        before["bio-week"]["tokens"]["spent"] + TOKENS_PER_HELLO
    )
    assert after["climate-month"]["tokens"] == before["climate-month"]["tokens"]


def test_naming_a_project_one_is_not_in_is_403_in_the_callers_dialect(site: Site) -> None:
    answer = site.post("carol", "other-model", project="physics")
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "project_not_allowed"
    assert error["param"] == "x-project"
    assert "'physics'" in error["message"] and "'exact'" in error["message"]
    host = site.hosts[0]
    client = anthropic.Anthropic(
        base_url=f"{host.url}/resource_server/alpha/vllm",
        api_key=site.keys["carol"],
        max_retries=0,
        default_headers={"x-project": "physics"},
    )
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        client.messages.create(
            model="other-model", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    body: Any = refused.value.body
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
    assert "'physics'" in body["error"]["message"]


def test_the_openai_client_sees_allocation_exhausted_and_does_not_retry(
    site: Site, backend: FakeBackend
) -> None:
    for index in range(4):  # carol's 9 tokens, spent (by the first test, or here)
        if site.post("carol", "budget-model", index=index).status_code == 429:
            break
    host = site.hosts[-1]
    client = openai.OpenAI(
        base_url=f"{host.url}/resource_server/alpha/vllm/v1", api_key=site.keys["carol"]
    )  # default retries: two
    calls = len(backend.requests_to("/v1/chat/completions"))
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="budget-model", messages=[{"role": "user", "content": "hello"}]
        )
    assert time.monotonic() - started < 5  # x-should-retry: false, no retries until renewal
    assert refused.value.code == "allocation_exhausted"
    assert "exact-month" in refused.value.message
    assert len(backend.requests_to("/v1/chat/completions")) == calls


def test_spent_survives_losing_the_count(site: Site) -> None:
    """Redis restarted (its keys gone), or a new worker without Redis: the count comes back
    from the request records of the period."""
    for index in range(3):
        assert site.post("erin", "durable-model", index=index).status_code == 200
    wait_until(lambda: site.spent("durable-month")["tokens"]["spent"] == 9)
    if site.mode == "redis":
        import redis

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        lost = list(client.scan_iter(match=f"{site.prefix}*"))
        assert lost
        client.delete(*lost)
        client.close()
        # The one request that meets the lost count is admitted and the rebuild follows at
        # once, unless the reconciler's round rebuilt it first (then it is refused already).
        answer = site.post("erin", "durable-model")
        if answer.status_code == 200:

            def rebuilt() -> bool:
                return site.spent("durable-month")["tokens"]["spent"] >= 9 + TOKENS_PER_HELLO

            wait_until(rebuilt)
            answer = site.post("erin", "durable-model", index=1)
        _refusal(answer)
        return
    _refusal(site.post("erin", "durable-model"))
    # A gateway started afresh (a new process: nothing counted in memory) rebuilds from the
    # records before it admits anything more than one request.
    host = site.hosts[0]
    fresh = GatewayServer(Path(host.tmp_path) / "fresh", env=host.env)
    fresh.tmp_path.mkdir()
    with fresh:
        fresh_site = Site(hosts=[fresh], keys=site.keys)
        first = fresh_site.post("erin", "durable-model")
        # Without Redis the reconciler runs as the worker starts; the first request may pass
        # before it finished, the second never does.
        assert first.status_code in (200, 429)
        wait_until(lambda: fresh_site.post("erin", "durable-model").status_code == 429)
