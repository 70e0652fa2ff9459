"""Reading fixture files for check_fixtures: JSON errors with file, line and column; row checks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resource_server_async.catalog.validation import (
    Problem,
    validate_cluster,
    validate_endpoint,
    validate_endpoint_references,
)

CLUSTER_MODEL = "resource_server_async.cluster"
ENDPOINT_MODEL = "resource_server_async.endpoint"


def describe_json_error(text: str, exc: json.JSONDecodeError) -> str:
    """A JSON syntax error in words an operator can act on; trailing commas are named as such."""
    before = text[: exc.pos].rstrip()
    after = text[exc.pos :].lstrip()
    if before.endswith(",") and after[:1] in ("]", "}"):
        comma = len(before) - 1
        line = text.count("\n", 0, comma) + 1
        column = comma - (text.rfind("\n", 0, comma) + 1) + 1
        return (
            f"line {line} column {column}: trailing comma before '{after[0]}' "
            "(JSON does not allow a comma after the last item; remove it)"
        )
    return f"line {exc.lineno} column {exc.colno}: {exc.msg}"


@dataclass
class FixtureSet:
    """The cluster and endpoint rows found in a set of files, with where each came from."""

    clusters: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    endpoints: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_fixture(path: Path, into: FixtureSet) -> None:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        into.problems.append(Problem(where, f"cannot read file: {exc}"))
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        into.problems.append(Problem(where, describe_json_error(text, exc)))
        return
    if not isinstance(data, list):
        into.problems.append(Problem(where, "a fixture file must be a JSON list of rows"))
        return
    for index, row in enumerate(data):
        row_where = f"{where} row {index}"
        if not isinstance(row, dict) or not isinstance(row.get("fields"), dict):
            into.problems.append(
                Problem(row_where, 'each row must be {"model": ..., "pk": ..., "fields": {...}}')
            )
            continue
        model = str(row.get("model", "")).lower()
        fields = row["fields"]
        if model == CLUSTER_MODEL:
            into.clusters.append((f"{row_where} (cluster {fields.get('cluster_name')!r})", fields))
        elif model == ENDPOINT_MODEL:
            into.endpoints.append(
                (f"{row_where} (endpoint {fields.get('endpoint_slug')!r})", fields)
            )
        else:
            into.problems.append(
                Problem(
                    row_where,
                    f"model {row.get('model')!r} is not {CLUSTER_MODEL} or {ENDPOINT_MODEL}; "
                    "this row is not checked",
                    "warning",
                )
            )


def check_files(paths: list[Path], known_clusters: dict[str, dict[str, Any]]) -> list[Problem]:
    """Every problem in the files, in file order; `known_clusters` are rows already stored."""
    found = FixtureSet()
    for path in paths:
        read_fixture(path, found)
    problems = found.problems
    clusters = dict(known_clusters)
    seen: dict[str, str] = {}
    for where, fields in found.clusters:
        problems += validate_cluster(fields, where)
        name = fields.get("cluster_name")
        if isinstance(name, str):
            if name in seen:
                problems.append(
                    Problem(where, f"cluster_name {name!r} is also defined at {seen[name]}")
                )
            seen[name] = where
            clusters[name] = fields
    slugs: dict[str, str] = {}
    for where, fields in found.endpoints:
        problems += validate_endpoint(fields, where)
        problems += validate_endpoint_references(fields, where, clusters)
        slug = fields.get("endpoint_slug")
        if isinstance(slug, str):
            if slug in slugs:
                problems.append(
                    Problem(where, f"endpoint_slug {slug!r} is also defined at {slugs[slug]}")
                )
            slugs[slug] = where
    return problems
