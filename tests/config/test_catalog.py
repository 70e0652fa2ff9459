"""The in-process catalog: lookups never query the database; changes are seen without restart."""

from __future__ import annotations

import asyncio

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from resource_server_async.catalog.snapshot import Catalog, build_snapshot
from resource_server_async.clusters.base import ClusterRow
from resource_server_async.endpoints.base import EndpointRow
from resource_server_async.endpoints.globus_compute import GlobusComputeEndpoint
from resource_server_async.models import Cluster, Endpoint
from tests.config.helpers import GC_CLUSTER, GC_ENDPOINT, cluster_row, endpoint_row
from tests.waiting import wait_until_async

pytestmark = pytest.mark.django_db

MODEL = "meta-llama/Meta-Llama-3.1-70B-Instruct"


@pytest.fixture
def loaded() -> Catalog:
    Cluster.objects.create(**cluster_row()["fields"])
    Endpoint.objects.create(**endpoint_row()["fields"])
    catalog = Catalog()
    assert catalog.reload() is True
    return catalog


def test_lookup_issues_no_sql_query(loaded: Catalog) -> None:
    with CaptureQueriesContext(connection) as queries:
        endpoint = loaded.lookup("sophia", "vllm", MODEL)
        again = loaded.lookup("sophia", "vllm", MODEL.upper())
        missing = loaded.lookup("sophia", "vllm", "no-such-model")
        wrong_cluster = loaded.lookup("polaris", "vllm", MODEL)
    assert len(queries) == 0
    assert isinstance(endpoint, GlobusComputeEndpoint)
    assert again is endpoint, "lookup is by slug, so case-insensitive"
    assert endpoint.model == MODEL, "the backend still receives the name it serves"
    assert endpoint.config.api_port == 8000  # type: ignore[attr-defined]
    assert missing is None and wrong_cluster is None


def test_changed_row_is_seen_without_restart(loaded: Catalog) -> None:
    first = loaded.lookup("sophia", "vllm", MODEL)
    assert loaded.reload() is False, "nothing changed: the snapshot is kept"
    row = Endpoint.objects.get()
    row.config = {**row.config, "api_port": 9001}
    row.save()
    assert loaded.reload() is True
    changed = loaded.lookup("sophia", "vllm", MODEL)
    assert changed is not first
    assert changed.config.api_port == 9001  # type: ignore[union-attr]
    Endpoint.objects.all().delete()
    assert loaded.reload() is True
    assert loaded.lookup("sophia", "vllm", MODEL) is None


def test_unchanged_rows_keep_their_adapter_objects(loaded: Catalog) -> None:
    first = loaded.lookup("sophia", "vllm", MODEL)
    Endpoint.objects.create(
        **endpoint_row(endpoint_slug="sophia-vllm-other", model="other")["fields"]
    )
    assert loaded.reload() is True
    assert loaded.lookup("sophia", "vllm", MODEL) is first
    assert [e.model for e in loaded.endpoints_for_model("OTHER")] == ["other"]


def create_endpoint_and_disconnect() -> None:
    Endpoint.objects.create(**endpoint_row()["fields"])
    connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_background_refresher_picks_up_a_change() -> None:
    Cluster.objects.create(**cluster_row()["fields"])
    catalog = Catalog()

    async def scenario() -> None:
        await catalog.refresh()
        assert catalog.lookup("sophia", "vllm", MODEL) is None
        catalog.start_refresher(0.05)
        await asyncio.to_thread(create_endpoint_and_disconnect)
        await wait_until_async(lambda: catalog.lookup("sophia", "vllm", MODEL) is not None)
        await catalog.stop_refresher()

    asyncio.run(scenario())
    assert catalog.lookup("sophia", "vllm", MODEL) is not None


def test_rows_that_cannot_be_built_are_skipped_not_fatal() -> None:
    clusters = [
        ClusterRow(
            "sophia",
            GC_CLUSTER,
            ("vllm",),
            ("chat/completions",),
            config={"qstat_endpoint_uuid": "a", "qstat_function_uuid": "b"},
        )
    ]
    good = EndpointRow(
        "sophia-vllm-a",
        "sophia",
        "vllm",
        "a",
        GC_ENDPOINT,
        config={"api_port": 1, "endpoint_uuid": "e", "function_uuid": "f"},
    )
    bad_config = EndpointRow("sophia-vllm-b", "sophia", "vllm", "b", GC_ENDPOINT, config={})
    orphan = EndpointRow("x-vllm-c", "x", "vllm", "c", GC_ENDPOINT, config={})
    snapshot = build_snapshot(clusters, [good, bad_config, orphan])
    assert list(snapshot.endpoints) == ["sophia-vllm-a"]
    assert any("sophia-vllm-b" in reason and "api_port" in reason for reason in snapshot.skipped)
    assert any("cluster 'x' is missing" in reason for reason in snapshot.skipped)


@pytest.mark.django_db(transaction=True)
def test_a_check_after_the_database_dropped_the_connection_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The catalog's thread keeps its connection without Django's ping before each check: a
    # connection the server has ended (a restart) is found out by the check itself, which is
    # made again on a new connection, with nothing logged.
    if connection.vendor != "postgresql":
        pytest.skip("ends a server-side session: PostgreSQL")
    Cluster.objects.create(**cluster_row()["fields"])
    catalog = Catalog()

    def backend_pid() -> int:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return int(cursor.fetchone()[0])

    async def in_thread() -> int:
        return await asyncio.get_running_loop().run_in_executor(catalog._executor, backend_pid)

    asyncio.run(catalog.refresh())
    thread_pid = asyncio.run(in_thread())
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [thread_pid])
    Endpoint.objects.create(**endpoint_row()["fields"])
    try:
        assert asyncio.run(catalog.refresh()) is True  # the change seen at the next check
        assert asyncio.run(in_thread()) != thread_pid
    finally:
        asyncio.run(catalog.stop_refresher())  # closes the thread's connection
    assert catalog.lookup("sophia", "vllm", MODEL) is not None
    assert "refresh failed" not in caplog.text
