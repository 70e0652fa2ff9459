"""Checks of cluster and endpoint rows, shared by loaddata, admin, check_fixtures and `check`."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.utils.text import slugify
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from resource_server_async.catalog.adapter_config import AdapterConfig
from resource_server_async.catalog.adapters import (
    AdapterError,
    cluster_adapter_class,
    endpoint_adapter_class,
)
from resource_server_async.catalog.capabilities import CatalogEntry
from resource_server_async.catalog.fields import coerce_config, coerce_string_list

Level = Literal["error", "warning"]

CLUSTER_FIELDS = frozenset(
    {
        "cluster_name",
        "cluster_adapter",
        "frameworks",
        "openai_endpoints",
        "allowed_globus_groups",
        "allowed_domains",
        "config",
        "updated_at",
    }
)
# Admission limits of an endpoint (docs/limits.md); absent in older fixtures, so optional.
LIMIT_FIELDS = (
    "tpm_model",
    "tpm_user",
    "rpm_model",
    "rpm_user",
    "max_concurrent_user",
    "max_concurrent",
)
ENDPOINT_FIELDS = frozenset(
    {
        "endpoint_slug",
        "cluster",
        "framework",
        "model",
        "endpoint_adapter",
        "allowed_globus_groups",
        "allowed_domains",
        "config",
        *LIMIT_FIELDS,
        "updated_at",
    }
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a row: where it is, what is wrong, and whether it blocks loading."""

    where: str
    message: str
    level: Level = "error"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class FixtureRowError(ValueError):
    """A row that must not be saved. A ValueError so that loaddata reports it with the row."""


def expected_slug(cluster: str, framework: str, model: str) -> str:
    """The slug rule of CONTRACT.md §1: requests find their endpoint by this slug."""
    return slugify(" ".join([cluster, framework, model.lower()]))


def raise_for_problems(problems: Iterable[Problem]) -> None:
    """Raise a Django ValidationError listing every error (warnings do not block)."""
    errors = [p.message for p in problems if p.level == "error"]
    if errors:
        raise ValidationError(errors)


def parse_config(schema: type[AdapterConfig], config: Any) -> AdapterConfig:
    """Validate a row's config against its adapter's schema (raises pydantic's ValidationError)."""
    return schema.model_validate(coerce_config(config))


def _type_name(annotation: Any) -> str:
    names = {
        int: "an integer",
        str: "a string",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }
    if annotation in names:
        return names[annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        return names.get(origin, str(annotation))
    return getattr(annotation, "__name__", str(annotation))


def _expected(schema: type[BaseModel], key: str) -> str:
    field = schema.model_fields.get(key)
    if field is None:
        return ""
    text = _type_name(field.annotation)
    if field.description:
        text += f", {field.description}"
    return f" (expected {text})"


def config_problems(
    schema: type[BaseModel], config: Any, where: str, adapter: str
) -> list[Problem]:
    """Problems of one config object, each naming the key and what was expected."""
    config = coerce_config(config)
    if not isinstance(config, dict):
        return [
            Problem(
                where, f"config must be a JSON object, got {type(config).__name__}: {config!r:.80}"
            )
        ]
    try:
        schema.model_validate(config)
    except PydanticValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error.get("loc", ())
            key = str(loc[0]) if loc else ""
            path = ".".join(str(part) for part in loc)
            label = f"config.{path}" if path else "config"
            if error["type"] == "missing":
                message = f"{label} is missing, required by {adapter}{_expected(schema, key)}"
            else:
                given = error.get("input")
                message = f"{label}: {error['msg']}; got {given!r:.80}{_expected(schema, key)}"
            problems.append(Problem(where, message))
        return problems
    return []


def _environment_warnings(adapter_cls: Any, config: Any, where: str) -> list[Problem]:
    try:
        parsed = parse_config(adapter_cls.Config, config)
    except PydanticValidationError:
        return []
    return [Problem(where, text, "warning") for text in adapter_cls.environment_problems(parsed)]


def _string_list_problems(
    fields: Mapping[str, Any], names: Iterable[str], where: str
) -> list[Problem]:
    problems = []
    for name in names:
        value = coerce_string_list(fields.get(name, []))
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            problems.append(Problem(where, f"{name} must be a list of strings, got {value!r:.80}"))
    return problems


def _required_strings(fields: Mapping[str, Any], names: Iterable[str], where: str) -> list[Problem]:
    problems = []
    for name in names:
        value = fields.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(where, f"{name} is required and must be a non-empty string"))
    return problems


def _unknown_fields(fields: Mapping[str, Any], known: frozenset[str], where: str) -> list[Problem]:
    return [
        Problem(where, f"unknown field {name!r} (known fields: {', '.join(sorted(known))})")
        for name in fields
        if name not in known
    ]


def validate_cluster(fields: Mapping[str, Any], where: str) -> list[Problem]:
    """Every problem of one cluster row that can be seen without looking at other rows."""
    problems = _unknown_fields(fields, CLUSTER_FIELDS, where)
    problems += _required_strings(fields, ["cluster_name", "cluster_adapter"], where)
    problems += _string_list_problems(
        fields,
        ["frameworks", "openai_endpoints", "allowed_globus_groups", "allowed_domains"],
        where,
    )
    for operation in coerce_string_list(fields.get("openai_endpoints", [])) or []:
        if isinstance(operation, str) and operation != operation.strip("/"):
            problems.append(
                Problem(
                    where,
                    f"openai_endpoints entry {operation!r} must not start or end with '/' "
                    f"(write {operation.strip('/')!r})",
                )
            )
    adapter = fields.get("cluster_adapter")
    if isinstance(adapter, str) and adapter.strip():
        try:
            cls = cluster_adapter_class(adapter)
        except AdapterError as exc:
            problems.append(Problem(where, f"cluster_adapter: {exc}"))
        else:
            problems += config_problems(cls.Config, fields.get("config", {}), where, cls.__name__)
            problems += _environment_warnings(cls, fields.get("config", {}), where)
    return problems


def validate_endpoint(fields: Mapping[str, Any], where: str) -> list[Problem]:
    """Every problem of one endpoint row that can be seen without looking at other rows."""
    problems = _unknown_fields(fields, ENDPOINT_FIELDS, where)
    problems += _required_strings(
        fields, ["endpoint_slug", "cluster", "framework", "model", "endpoint_adapter"], where
    )
    problems += _string_list_problems(fields, ["allowed_globus_groups", "allowed_domains"], where)
    for name in LIMIT_FIELDS:
        value = fields.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append(
                Problem(where, f"{name} must be an integer >= 0 (0 = unlimited), got {value!r}")
            )
    cluster, framework, model = (fields.get(k) for k in ("cluster", "framework", "model"))
    slug = fields.get("endpoint_slug")
    if all(isinstance(v, str) and v for v in (cluster, framework, model, slug)):
        expected = expected_slug(str(cluster), str(framework), str(model))
        if slug != expected:
            problems.append(
                Problem(
                    where,
                    f"endpoint_slug {slug!r} does not follow the slug rule; expected {expected!r} "
                    "(slugify of 'cluster framework model' with the model in lower case)",
                )
            )
    adapter = fields.get("endpoint_adapter")
    if isinstance(adapter, str) and adapter.strip():
        try:
            cls = endpoint_adapter_class(adapter)
        except AdapterError as exc:
            problems.append(Problem(where, f"endpoint_adapter: {exc}"))
        else:
            problems += config_problems(cls.Config, fields.get("config", {}), where, cls.__name__)
            problems += _environment_warnings(cls, fields.get("config", {}), where)
    if isinstance(coerce_config(fields.get("config", {})), dict):
        # capabilities and aliases: read by the catalog for every adapter.
        problems += config_problems(CatalogEntry, fields.get("config", {}), where, "the catalog")
    return problems


def validate_endpoint_references(
    fields: Mapping[str, Any], where: str, clusters: Mapping[str, Mapping[str, Any]]
) -> list[Problem]:
    """Problems that need the cluster rows: the cluster exists and lists the framework."""
    name = fields.get("cluster")
    if not isinstance(name, str) or not name:
        return []
    cluster = clusters.get(name)
    if cluster is None:
        known = ", ".join(sorted(clusters)) or "none"
        return [Problem(where, f"cluster {name!r} does not exist (known clusters: {known})")]
    frameworks = coerce_string_list(cluster.get("frameworks", []))
    framework = fields.get("framework")
    if isinstance(frameworks, list) and framework not in frameworks:
        # A warning: the seed's own examples do this. The endpoint is not served until it is fixed.
        return [
            Problem(
                where,
                f"framework {framework!r} is not among the frameworks of cluster {name!r} "
                f"{frameworks}; the endpoint is not served until the cluster lists it",
                "warning",
            )
        ]
    return []
