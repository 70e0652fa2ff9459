"""Project membership in the catalog: a principal's projects in order, and the one a request is
charged to (x-project, else the key's default, else the first), read from real rows."""

from __future__ import annotations

import pytest

from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.projects import ProjectRef, load_projects
from resource_server_async.catalog.version import current_version
from resource_server_async.errors import GatewayError
from resource_server_async.models import Allocation, ApiKey, Project

pytestmark = pytest.mark.django_db


def key_principal(key: ApiKey, groups: frozenset[str] = frozenset()) -> Principal:
    return Principal(id=f"api_key:{key.pk}", username=key.name, kind="api_key", groups=groups)


@pytest.fixture
def keys() -> tuple[ApiKey, ApiKey]:
    first = ApiKey.objects.create(name="first", prefix="igw_a", key_hash="a" * 64)
    second = ApiKey.objects.create(name="second", prefix="igw_b", key_hash="b" * 64)
    return first, second


def test_projects_come_in_order_then_name_from_keys_and_groups(
    keys: tuple[ApiKey, ApiKey],
) -> None:
    first, _ = keys
    late = Project.objects.create(name="zeta", order=5, weight=3)
    late.api_keys.add(first)
    Project.objects.create(name="beta", order=5, globus_group="g-climate")
    Project.objects.create(name="alpha", order=50, globus_group="g-climate")
    Project.objects.create(name="other", order=1, globus_group="g-other")
    projects = load_projects()
    principal = key_principal(first, frozenset({"g-climate"}))
    assert projects.of(principal) == (
        ProjectRef("beta", 1),
        ProjectRef("zeta", 3),
        ProjectRef("alpha", 1),
    )
    assert projects.choose(principal, None) == ProjectRef("beta", 1)
    assert projects.choose(principal, "alpha") == ProjectRef("alpha", 1)


def test_the_keys_default_wins_over_the_order_and_counts_as_membership(
    keys: tuple[ApiKey, ApiKey],
) -> None:
    first, second = keys
    Project.objects.create(name="early", order=1).api_keys.add(first, second)
    late = Project.objects.create(name="late", order=9)
    first.default_project = late
    first.save()
    projects = load_projects()
    assert projects.choose(key_principal(first), None) == ProjectRef("late", 1)
    assert projects.choose(key_principal(second), None) == ProjectRef("early", 1)
    assert [r.name for r in projects.of(key_principal(first))] == ["early", "late"]


def test_naming_a_project_one_is_not_in_is_refused_with_ones_projects(
    keys: tuple[ApiKey, ApiKey],
) -> None:
    first, second = keys
    Project.objects.create(name="mine").api_keys.add(first)
    Project.objects.create(name="theirs").api_keys.add(second)
    projects = load_projects()
    with pytest.raises(GatewayError) as refused:
        projects.choose(key_principal(first), "theirs")
    assert refused.value.status == 403
    assert refused.value.code == "project_not_allowed"
    assert "'theirs'" in refused.value.message and "'mine'" in refused.value.message
    assert projects.choose(key_principal(second), None) == ProjectRef("theirs", 1)


def test_no_projects_means_no_project(keys: tuple[ApiKey, ApiKey]) -> None:
    projects = load_projects()
    assert projects.choose(key_principal(keys[0]), None) is None
    with pytest.raises(GatewayError):
        projects.choose(key_principal(keys[0]), "anything")


def test_membership_edits_bump_the_catalog_version(keys: tuple[ApiKey, ApiKey]) -> None:
    first, second = keys
    project = Project.objects.create(name="p")
    before = current_version()
    project.api_keys.add(first)
    after_member = current_version()
    assert after_member != before
    second.default_project = project
    second.save()
    after_default = current_version()
    assert after_default != after_member
    Allocation.objects.create(name="a", project=project, tokens=10)
    assert current_version() != after_default
