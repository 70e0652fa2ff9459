"""The base class of cluster adapters, and the immutable row they are built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from resource_server_async.catalog.adapter_config import AdapterConfig


@dataclass(frozen=True, slots=True)
class ClusterRow:
    """A cluster as the catalog holds it: a snapshot of the database row, never re-queried."""

    name: str
    adapter_path: str
    frameworks: tuple[str, ...]
    openai_endpoints: tuple[str, ...]
    allowed_groups: frozenset[str] = field(default_factory=frozenset)
    allowed_domains: frozenset[str] = field(default_factory=frozenset)
    config: dict[str, Any] = field(default_factory=dict)


class BaseCluster:
    """A cluster adapter. Subclasses declare `Config` and override the behaviour they support."""

    Config: ClassVar[type[AdapterConfig]] = AdapterConfig

    def __init__(self, row: ClusterRow, config: AdapterConfig) -> None:
        self.row = row
        self.config = config

    @property
    def name(self) -> str:
        return self.row.name

    @classmethod
    def environment_problems(cls, config: AdapterConfig) -> list[str]:
        """Warnings about this machine's environment for a valid config (e.g. an unset variable)."""
        return []

    def serves_operation(self, operation: str) -> bool:
        return operation in self.row.openai_endpoints

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.row.name}>"
