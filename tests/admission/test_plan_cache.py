"""The per-request caches of admission: limit plans and project membership, their bounds, and
that a new catalog snapshot (limits or projects edited) is seen at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from resource_server_async.admission import limits
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog import projects as projects_module
from resource_server_async.catalog.projects import build_projects
from resource_server_async.catalog.snapshot import CatalogSnapshot, catalog


@dataclass
class Request:
    principal: Principal
    body: dict[str, Any] = field(default_factory=lambda: {"max_tokens": 10})
    raw: bytes = b"x" * 40
    operation: str = "chat/completions"
    admission: Any = None


def row(**limits_: int) -> SimpleNamespace:
    fields = dict(rpm_user=0, tpm_user=0, max_concurrent_user=0, rpm_model=0, tpm_model=0)
    return SimpleNamespace(slug="c-f-m", model="m", cluster="c", **{**fields, **limits_})


def key(n: int) -> Principal:
    return Principal(id=f"api_key:{n}", username=f"k{n}", kind="api_key")


@pytest.fixture(autouse=True)
def fresh_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "snapshot", CatalogSnapshot())


def test_a_plan_charges_each_request_its_own_tokens() -> None:
    endpoint = SimpleNamespace(row=row(rpm_user=5, tpm_user=1000, max_concurrent_user=2))
    first, slots = limits.plan(Request(key(1)), endpoint)
    second, _ = limits.plan(Request(key(1), body={"max_tokens": 90}), endpoint)
    assert [(b.kind, b.capacity) for b in first] == [("requests", 5), ("tokens", 1000)]
    assert [b.cost for b in first] == [1, 20] and [b.cost for b in second] == [1, 100]
    assert first[0] is second[0]  # the request bucket is the cached one
    assert [s.limit for s in slots] == [2]


def test_the_plan_cache_holds_at_most_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "PLAN_CACHE_ENTRIES", 50)
    endpoint = SimpleNamespace(row=row(rpm_user=5))
    sizes = []
    for n in range(500):
        limits.plan(Request(key(n)), endpoint)
        sizes.append(len(limits._plans))
    assert max(sizes) == 50
    assert limits.plan(Request(key(3)), endpoint)[0][0].key.endswith(":u:api_key:3:r")


def test_a_new_snapshot_replans(monkeypatch: pytest.MonkeyPatch) -> None:
    before = SimpleNamespace(row=row(rpm_user=5))
    assert limits.plan(Request(key(1)), before)[0][0].capacity == 5
    monkeypatch.setattr(catalog, "snapshot", CatalogSnapshot())  # the endpoint was edited
    after = SimpleNamespace(row=row(rpm_user=7))
    assert limits.plan(Request(key(1)), after)[0][0].capacity == 7


def test_membership_answers_are_cached_within_their_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(projects_module, "MEMBERSHIP_CACHE_ENTRIES", 20)
    rows = [
        dict(
            name="p",
            weight=1,
            order=0,
            globus_group="",
            api_key_ids=list(range(100)),
            default_for=[],
        ),
    ]
    projects = build_projects(rows)
    sizes = []
    for n in range(100):
        assert [r.name for r in projects.of(key(n))] == ["p"]
        sizes.append(len(projects._known))
    assert max(sizes) == 20
    assert projects.of(key(500)) == ()
