"""The in-process catalog: adapters for every cluster and endpoint, built once per change.

Requests read `catalog.snapshot` and never query the database. A background task reads the
catalog's version counter once a second (one row, bumped in the same transaction as every change
to a catalog table: catalog/version.py) and rebuilds the snapshot only when it moved, so an edit
in the admin, a `loaddata` or `manage.py maintenance` on any host is seen by every worker within
about a second, without a restart, whatever the hosts' clocks say.

Lookups are dictionary reads: a model's own slug first, then the alias map (`config.aliases`
and LEGACY_ENDPOINT_SLUG_MAPPING), built here once per snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from pydantic import ValidationError as PydanticValidationError

from resource_server_async.catalog.adapters import (
    AdapterError,
    cluster_adapter_class,
    endpoint_adapter_class,
)
from resource_server_async.catalog.capabilities import EMPTY_ENTRY, CatalogEntry
from resource_server_async.catalog.limit_overrides import LimitOverrides, user_limits
from resource_server_async.catalog.maintenance_windows import Windows, load_windows
from resource_server_async.catalog.projects import Projects, load_projects
from resource_server_async.catalog.validation import expected_slug, parse_config
from resource_server_async.clusters.base import BaseCluster, ClusterRow
from resource_server_async.endpoints.base import BaseEndpoint, EndpointRow

logger = logging.getLogger(__name__)

Fingerprint = tuple[Any, ...]


@dataclass(frozen=True)
class CatalogSnapshot:
    clusters: dict[str, BaseCluster] = field(default_factory=dict)
    endpoints: dict[str, BaseEndpoint] = field(default_factory=dict)  # by slug
    by_model: dict[str, tuple[BaseEndpoint, ...]] = field(default_factory=dict)  # by model.lower()
    # Rows that could not be turned into adapters, with the reason (also logged).
    skipped: tuple[str, ...] = ()
    fingerprint: Fingerprint = ()
    # Per-principal limits set in the admin (catalog/limit_overrides.py).
    limit_overrides: LimitOverrides = field(default_factory=LimitOverrides)
    # Project membership and allocations (catalog/projects.py).
    projects: Projects = field(default_factory=Projects)
    # Another name's slug -> the endpoint's own slug (config.aliases, legacy slugs).
    aliases: dict[str, str] = field(default_factory=dict)
    # config.capabilities and config.aliases of each endpoint, by slug.
    entries: dict[str, CatalogEntry] = field(default_factory=dict)
    # Maintenance windows not yet over, by cluster (admission/maintenance.py reads them).
    maintenance: Windows = field(default_factory=dict)

    def entry(self, endpoint: BaseEndpoint) -> CatalogEntry:
        return self.entries.get(endpoint.slug, EMPTY_ENTRY)


@lru_cache(maxsize=4096)
def slug_for(cluster: str, framework: str, model: str) -> str:
    # slugify is ~10 µs; requests repeat the same few models, so remember the answers.
    return expected_slug(cluster, framework, model)


def cluster_row(obj: Any) -> ClusterRow:
    return ClusterRow(
        name=obj.cluster_name,
        adapter_path=obj.cluster_adapter,
        frameworks=tuple(obj.frameworks),
        openai_endpoints=tuple(obj.openai_endpoints),
        allowed_groups=frozenset(obj.allowed_globus_groups),
        allowed_domains=frozenset(obj.allowed_domains),
        config=dict(obj.config),
    )


def endpoint_row(obj: Any) -> EndpointRow:
    return EndpointRow(
        slug=obj.endpoint_slug,
        cluster=obj.cluster,
        framework=obj.framework,
        model=obj.model,
        adapter_path=obj.endpoint_adapter,
        allowed_groups=frozenset(obj.allowed_globus_groups),
        allowed_domains=frozenset(obj.allowed_domains),
        config=dict(obj.config),
        tpm_model=obj.tpm_model,
        tpm_user=obj.tpm_user,
        rpm_model=obj.rpm_model,
        rpm_user=obj.rpm_user,
        max_concurrent_user=obj.max_concurrent_user,
        max_concurrent=obj.max_concurrent,
    )


def _catalog_entry(row: EndpointRow) -> CatalogEntry:
    """The row's capabilities and aliases; a row saved past validation loses only these."""
    try:
        return CatalogEntry.model_validate(row.config)
    except PydanticValidationError as exc:
        logger.error("catalog: endpoint %r: capabilities and aliases ignored: %s", row.slug, exc)
        return EMPTY_ENTRY


def _alias_map(
    endpoints: dict[str, BaseEndpoint],
    entries: dict[str, CatalogEntry],
    by_model: dict[str, list[BaseEndpoint]],
    legacy: dict[str, str],
) -> dict[str, str]:
    """Slugs of other names -> the endpoint's slug. An endpoint's own model always wins over
    another's alias; a legacy slug counts only while its new endpoint exists. Each alias also
    joins `by_model` (the federated lookup), in place."""
    aliases: dict[str, str] = {}
    for slug, entry in entries.items():
        row = endpoints[slug].row
        for name in entry.aliases:
            alias_slug = slug_for(row.cluster, row.framework, name)
            if alias_slug in endpoints or alias_slug in aliases:
                logger.error(
                    "catalog: alias %r of endpoint %r ignored: the name is taken on %s/%s",
                    name,
                    slug,
                    row.cluster,
                    row.framework,
                )
                continue
            aliases[alias_slug] = slug
            by_model.setdefault(name.lower(), []).append(endpoints[slug])
    for old, new in legacy.items():
        if new in endpoints and old not in endpoints:
            aliases.setdefault(old, new)
    return aliases


def build_snapshot(
    clusters: list[ClusterRow],
    endpoints: list[EndpointRow],
    fingerprint: Fingerprint = (),
    previous: CatalogSnapshot | None = None,
    limit_overrides: LimitOverrides | None = None,
    projects: Projects | None = None,
    maintenance: Windows | None = None,
) -> CatalogSnapshot:
    """Adapters for the rows; unchanged rows keep their adapter objects from `previous`."""
    skipped: list[str] = []
    built_clusters: dict[str, BaseCluster] = {}
    for row in clusters:
        old = previous.clusters.get(row.name) if previous else None
        if old is not None and old.row == row:
            built_clusters[row.name] = old
            continue
        try:
            cls = cluster_adapter_class(row.adapter_path)
            built_clusters[row.name] = cls(row, parse_config(cls.Config, row.config))
        except (AdapterError, PydanticValidationError) as exc:
            skipped.append(f"cluster {row.name!r}: {exc}")
    built_endpoints: dict[str, BaseEndpoint] = {}
    by_model: dict[str, list[BaseEndpoint]] = {}
    for erow in endpoints:
        cluster = built_clusters.get(erow.cluster)
        if cluster is None:
            skipped.append(
                f"endpoint {erow.slug!r}: cluster {erow.cluster!r} is missing or invalid"
            )
            continue
        if erow.framework not in cluster.row.frameworks:
            skipped.append(
                f"endpoint {erow.slug!r}: cluster {erow.cluster!r} does not list "
                f"framework {erow.framework!r}"
            )
            continue
        old_endpoint = previous.endpoints.get(erow.slug) if previous else None
        if (
            old_endpoint is not None
            and old_endpoint.row == erow
            and old_endpoint.cluster is cluster
        ):
            endpoint = old_endpoint
        else:
            try:
                ecls = endpoint_adapter_class(erow.adapter_path)
                endpoint = ecls(erow, parse_config(ecls.Config, erow.config), cluster)
            except (AdapterError, PydanticValidationError) as exc:
                skipped.append(f"endpoint {erow.slug!r}: {exc}")
                continue
        built_endpoints[erow.slug] = endpoint
        by_model.setdefault(erow.model.lower(), []).append(endpoint)
    entries = {
        slug: entry
        for slug, endpoint in built_endpoints.items()
        if (entry := _catalog_entry(endpoint.row)) is not EMPTY_ENTRY
    }
    aliases = _alias_map(built_endpoints, entries, by_model, settings.LEGACY_ENDPOINT_SLUG_MAPPING)
    for reason in skipped:
        logger.error("catalog: skipped %s", reason)
    return CatalogSnapshot(
        clusters=built_clusters,
        endpoints=built_endpoints,
        by_model={model: tuple(items) for model, items in by_model.items()},
        skipped=tuple(skipped),
        fingerprint=fingerprint,
        limit_overrides=limit_overrides or LimitOverrides(),
        projects=projects or Projects(),
        aliases=aliases,
        entries=entries,
        maintenance=maintenance or {},
    )


def database_fingerprint() -> Fingerprint:
    """The catalog's version counter (catalog/version.py): one indexed row read."""
    from resource_server_async.catalog.version import current_version

    return (current_version(),)


def load_limit_overrides() -> LimitOverrides:
    from resource_server_async.models import LimitOverride

    by_key, by_group = {}, {}
    for obj in LimitOverride.objects.all():
        limits = user_limits(obj.rpm_user, obj.tpm_user, obj.max_concurrent_user)
        if obj.api_key_id is not None:
            by_key[f"api_key:{obj.api_key_id}"] = limits
        elif obj.globus_group:
            by_group[obj.globus_group] = limits
    return LimitOverrides(by_key, by_group)


def load_from_database(previous: CatalogSnapshot | None = None) -> CatalogSnapshot:
    from resource_server_async.models import Cluster, Endpoint

    fingerprint = database_fingerprint()
    clusters = [cluster_row(obj) for obj in Cluster.objects.all()]
    endpoints = [endpoint_row(obj) for obj in Endpoint.objects.all()]
    overrides = load_limit_overrides()
    projects = load_projects()
    windows = load_windows()
    return build_snapshot(clusters, endpoints, fingerprint, previous, overrides, projects, windows)


class Catalog:
    """The process's current snapshot and the background task that keeps it fresh."""

    def __init__(self) -> None:
        self.snapshot = CatalogSnapshot()
        self.loaded = False
        # One thread for database reads keeps one connection instead of one per pool thread.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog")
        self._task: asyncio.Task[None] | None = None

    # --- lookups (hot path: dictionary reads only) ---------------------------------------

    def lookup(self, cluster: str, framework: str, model: str) -> BaseEndpoint | None:
        snapshot = self.snapshot
        slug = slug_for(cluster, framework, model)
        endpoint = snapshot.endpoints.get(slug)
        if endpoint is None and (target := snapshot.aliases.get(slug)) is not None:
            endpoint = snapshot.endpoints.get(target)
        if (
            endpoint is None
            or endpoint.row.cluster != cluster
            or endpoint.row.framework != framework
        ):
            return None
        return endpoint

    def cluster(self, name: str) -> BaseCluster | None:
        return self.snapshot.clusters.get(name)

    def endpoints_for_model(self, model: str) -> tuple[BaseEndpoint, ...]:
        return self.snapshot.by_model.get(model.lower(), ())

    # --- refresh ---------------------------------------------------------------------------

    def install(self, snapshot: CatalogSnapshot) -> None:
        self.snapshot = snapshot
        self.loaded = True

    def reload(self) -> bool:
        """Synchronously rebuild if the database changed; True if a new snapshot was installed."""
        if self.loaded and database_fingerprint() == self.snapshot.fingerprint:
            return False
        self.install(load_from_database(self.snapshot))
        return True

    def _reload_in_thread(self) -> bool:
        """The check in the catalog's thread, on the thread's one connection. Not through
        close_old_connections() around it: that re-arms Django's health check, so every check
        (once a second, idle or not) cost a ping as well. A connection that broke since the last
        check (a database restart) fails the check: it is closed and the check made once more on
        a fresh one; a connection past DB_CONN_MAX_AGE is closed after the check, as Django
        would."""
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            try:
                return self.reload()
            except DatabaseError:
                connection.close()
                return self.reload()
        finally:
            if connection.close_at is not None and time.monotonic() >= connection.close_at:
                connection.close()

    async def refresh(self) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._reload_in_thread)

    async def _refresh_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:
                # A database hiccup must not stop refreshing; the old snapshot keeps serving.
                logger.exception("catalog: refresh failed; serving the previous snapshot")

    def start_refresher(self, interval: float) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_forever(interval))

    async def stop_refresher(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Close the reader thread's database connection, so nothing lingers after shutdown.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, connections.close_all)


catalog = Catalog()
