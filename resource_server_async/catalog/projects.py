"""Projects as the catalog holds them: a principal's projects, the one a request is charged to
(the `x-project` header, else the key's default project, else the first by (order, name)), and
each project's allocations. Read into the snapshot with the clusters, so that admission costs
dictionary reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from resource_server_async.auth.principal import Principal
from resource_server_async.errors import GatewayError

PROJECT_HEADER = "x-project"


@dataclass(frozen=True, slots=True)
class ProjectRef:
    """The project a request is charged to: what allocations and the fair-share queue read."""

    name: str
    weight: int


@dataclass(frozen=True, slots=True)
class AllocationRule:
    """One Allocation row: a budget per period for a project, maybe for one model/cluster."""

    id: int
    name: str
    project: str
    period: str  # "month" | "week" | "day"
    start_day: int  # month: 1-28; week: 1 (Monday) - 7
    tokens: int | None
    gpu_seconds: int | None
    model: str = ""
    cluster: str = ""

    def applies(self, cluster: str, model: str) -> bool:
        return (not self.model or self.model == model) and (
            not self.cluster or self.cluster == cluster
        )


MEMBERSHIP_CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class Projects:
    """Members by principal id ("api_key:<pk>") and by Globus group id; `rank` orders them."""

    by_principal: dict[str, frozenset[str]] = field(default_factory=dict)
    by_group: dict[str, frozenset[str]] = field(default_factory=dict)
    default_of: dict[str, str] = field(default_factory=dict)  # principal id -> project name
    refs: dict[str, ProjectRef] = field(default_factory=dict)
    rank: dict[str, int] = field(default_factory=dict)  # position by (order, name)
    allocations: dict[str, tuple[AllocationRule, ...]] = field(default_factory=dict)  # by project
    # of()'s answers by (principal id, groups), at most MEMBERSHIP_CACHE_ENTRIES (then afresh):
    # choose() asks per request. A new catalog snapshot builds new Projects, so edits show.
    _known: dict[tuple[str, frozenset[str]], tuple[ProjectRef, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def of(self, principal: Principal) -> tuple[ProjectRef, ...]:
        """The principal's projects in the documented order (order, then name)."""
        if not self.refs:
            return ()
        key = (principal.id, principal.groups)
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= MEMBERSHIP_CACHE_ENTRIES:
                self._known.clear()
            known = self._known[key] = self._find(principal)
        return known

    def _find(self, principal: Principal) -> tuple[ProjectRef, ...]:
        names = set(self.by_principal.get(principal.id, ()))
        if self.by_group:
            for group in principal.groups:
                names.update(self.by_group.get(group, ()))
        return tuple(self.refs[n] for n in sorted(names, key=self.rank.__getitem__))

    def choose(self, principal: Principal, named: str | None) -> ProjectRef | None:
        """The project to charge: `named` (the x-project header), which must be one of the
        principal's (else 403), else the key's default, else the first; None: no project."""
        if named:
            mine = self.of(principal)
            for ref in mine:
                if ref.name == named:
                    return ref
            yours = ", ".join(repr(r.name) for r in mine) or "none"
            raise GatewayError(
                403,
                "project_not_allowed",
                f"You are not a member of project {named!r} ({PROJECT_HEADER} header). "
                f"Your projects: {yours}.",
                param=PROJECT_HEADER,
            )
        if not self.refs:
            return None
        default = self.default_of.get(principal.id)
        if default is not None:
            return self.refs[default]
        mine = self.of(principal)
        return mine[0] if mine else None


def build_projects(
    rows: list[dict[str, Any]], allocations: tuple[AllocationRule, ...] = ()
) -> Projects:
    """From rows of {name, weight, order, globus_group, api_key_ids, default_for}: the
    membership maps. A key whose default is a project counts as one of its members."""
    ordered = sorted(rows, key=lambda r: (r["order"], r["name"]))
    refs = {r["name"]: ProjectRef(r["name"], r["weight"]) for r in ordered}
    rank = {r["name"]: index for index, r in enumerate(ordered)}
    by_principal: dict[str, set[str]] = {}
    by_group: dict[str, set[str]] = {}
    default_of: dict[str, str] = {}
    for row in ordered:
        for pk in (*row["api_key_ids"], *row["default_for"]):
            by_principal.setdefault(f"api_key:{pk}", set()).add(row["name"])
        for pk in row["default_for"]:
            default_of[f"api_key:{pk}"] = row["name"]
        if row["globus_group"]:
            by_group.setdefault(row["globus_group"], set()).add(row["name"])
    by_project: dict[str, list[AllocationRule]] = {}
    for rule in allocations:
        by_project.setdefault(rule.project, []).append(rule)
    return Projects(
        {k: frozenset(v) for k, v in by_principal.items()},
        {k: frozenset(v) for k, v in by_group.items()},
        default_of,
        refs,
        rank,
        {k: tuple(v) for k, v in by_project.items()},
    )


def allocation_rule(obj: Any) -> AllocationRule:
    return AllocationRule(
        id=obj.pk,
        name=obj.name,
        project=obj.project.name,
        period=obj.period,
        start_day=obj.start_day,
        tokens=obj.tokens,
        gpu_seconds=obj.gpu_seconds,
        model=obj.model,
        cluster=obj.cluster,
    )


def load_projects() -> Projects:
    """The Project rows, their API keys, the keys' defaults and the allocations (four queries,
    in the catalog's thread)."""
    from resource_server_async.models import Allocation, ApiKey, Project

    rows: dict[int, dict[str, Any]] = {
        p.pk: {
            "name": p.name,
            "weight": p.weight,
            "order": p.order,
            "globus_group": p.globus_group,
            "api_key_ids": [],
            "default_for": [],
        }
        for p in Project.objects.all()
    }
    for project_id, key_id in Project.api_keys.through.objects.values_list(
        "project_id", "apikey_id"
    ):
        rows[project_id]["api_key_ids"].append(key_id)
    defaults = ApiKey.objects.filter(default_project__isnull=False)
    for key_id, project_id in defaults.values_list("pk", "default_project_id"):
        rows[project_id]["default_for"].append(key_id)
    rules = tuple(allocation_rule(a) for a in Allocation.objects.select_related("project"))
    return build_projects(list(rows.values()), rules)
