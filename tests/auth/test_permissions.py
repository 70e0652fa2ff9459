"""Authorization: the cluster's AND the endpoint's groups/domains restrictions must both pass."""

from __future__ import annotations

import pytest

from resource_server_async.api.app import Dialect
from resource_server_async.auth.permissions import (
    authorize_cluster,
    authorize_endpoint,
    can_use_cluster,
    can_use_endpoint,
)
from resource_server_async.auth.principal import Principal
from resource_server_async.catalog.adapter_config import AdapterConfig
from resource_server_async.clusters.base import BaseCluster, ClusterRow
from resource_server_async.endpoints.base import BaseEndpoint, EndpointRow
from resource_server_async.errors import GatewayError

SOPHIA_USERS = "11111111-1111-1111-1111-111111111111"
LLAMA_USERS = "22222222-2222-2222-2222-222222222222"


def cluster(groups: tuple[str, ...] = (), domains: tuple[str, ...] = ()) -> BaseCluster:
    row = ClusterRow(
        name="sophia",
        adapter_path="resource_server_async.clusters.base.BaseCluster",
        frameworks=("vllm",),
        openai_endpoints=("chat/completions",),
        allowed_groups=frozenset(groups),
        allowed_domains=frozenset(domains),
    )
    return BaseCluster(row, AdapterConfig())


def endpoint(
    on: BaseCluster, groups: tuple[str, ...] = (), domains: tuple[str, ...] = ()
) -> BaseEndpoint:
    row = EndpointRow(
        slug="sophia-vllm-meta-llamallama-33-70b-instruct",
        cluster="sophia",
        framework="vllm",
        model="meta-llama/Llama-3.3-70B-Instruct",
        adapter_path="resource_server_async.endpoints.base.BaseEndpoint",
        allowed_groups=frozenset(groups),
        allowed_domains=frozenset(domains),
    )
    return BaseEndpoint(row, AdapterConfig(), on)


def person(groups: tuple[str, ...] = (), domain: str = "anl.gov") -> Principal:
    return Principal(
        id="u1",
        username=f"jdoe@{domain}",
        kind="user",
        idp_domain=domain,
        groups=frozenset(groups),
    )


@pytest.mark.parametrize(
    ("cluster_groups", "cluster_domains", "endpoint_groups", "endpoint_domains", "who", "allowed"),
    [
        # Everything open.
        ((), (), (), (), person(), True),
        # The cluster's group restriction holds even when the endpoint is open.
        ((SOPHIA_USERS,), (), (), (), person(), False),
        ((SOPHIA_USERS,), (), (), (), person((SOPHIA_USERS,)), True),
        # The endpoint's restriction adds to the cluster's: both must pass.
        ((SOPHIA_USERS,), (), (LLAMA_USERS,), (), person((SOPHIA_USERS,)), False),
        ((SOPHIA_USERS,), (), (LLAMA_USERS,), (), person((LLAMA_USERS,)), False),
        ((SOPHIA_USERS,), (), (LLAMA_USERS,), (), person((SOPHIA_USERS, LLAMA_USERS)), True),
        # Domains: the identity-provider domain of the identity used.
        ((), ("anl.gov",), (), (), person(domain="uchicago.edu"), False),
        ((), ("anl.gov", "uchicago.edu"), (), (), person(domain="uchicago.edu"), True),
        ((), (), (), ("anl.gov",), person(domain="uchicago.edu"), False),
        # Groups and domains on one row: both apply.
        ((SOPHIA_USERS,), ("anl.gov",), (), (), person((SOPHIA_USERS,), "uchicago.edu"), False),
        ((SOPHIA_USERS,), ("anl.gov",), (), (), person((SOPHIA_USERS,), "anl.gov"), True),
    ],
)
def test_cluster_and_endpoint_restrictions_both_apply(
    cluster_groups: tuple[str, ...],
    cluster_domains: tuple[str, ...],
    endpoint_groups: tuple[str, ...],
    endpoint_domains: tuple[str, ...],
    who: Principal,
    allowed: bool,
) -> None:
    on = cluster(cluster_groups, cluster_domains)
    target = endpoint(on, endpoint_groups, endpoint_domains)

    assert can_use_endpoint(who, target) is allowed
    if allowed:
        authorize_endpoint(who, target)
    else:
        with pytest.raises(GatewayError) as caught:
            authorize_endpoint(who, target)
        assert caught.value.status == 403


def test_api_key_principal_follows_the_same_rules() -> None:
    key = Principal(id="api_key:3", username="ci", kind="api_key", groups=frozenset({SOPHIA_USERS}))
    restricted = cluster((SOPHIA_USERS,))

    assert can_use_endpoint(key, endpoint(restricted))
    assert not can_use_endpoint(key, endpoint(cluster((), ("anl.gov",))))


def test_denied_endpoint_answers_403_saying_what_to_do() -> None:
    target = endpoint(cluster((SOPHIA_USERS,)))

    with pytest.raises(GatewayError) as caught:
        authorize_endpoint(person(), target)

    assert caught.value.body(Dialect.OPENAI) == {
        "error": {
            "message": "You are not allowed to use model 'meta-llama/Llama-3.3-70B-Instruct' on "
            "cluster 'sophia'. Ask the gateway operator to add your group or domain.",
            "type": "permission_error",
            "param": None,
            "code": "permission_denied",
        }
    }
    assert caught.value.body(Dialect.ANTHROPIC) == {
        "type": "error",
        "error": {
            "type": "permission_error",
            "message": "You are not allowed to use model 'meta-llama/Llama-3.3-70B-Instruct' on "
            "cluster 'sophia'. Ask the gateway operator to add your group or domain.",
        },
    }


def test_denied_cluster_answers_403() -> None:
    restricted = cluster((SOPHIA_USERS,))

    assert not can_use_cluster(person(), restricted)
    assert can_use_cluster(person((SOPHIA_USERS,)), restricted)
    with pytest.raises(GatewayError) as caught:
        authorize_cluster(person(), restricted)
    assert (caught.value.status, caught.value.code) == (403, "permission_denied")
    assert caught.value.message == (
        "You are not allowed to use cluster 'sophia'. "
        "Ask the gateway operator to add your group or domain."
    )


def test_domains_written_in_capitals_in_a_fixture_still_match() -> None:
    assert can_use_cluster(person(domain="anl.gov"), cluster((), ("ANL.gov",)))
    assert not can_use_cluster(person(domain="uchicago.edu"), cluster((), ("ANL.gov",)))
