"""The adapter registry: cluster and endpoint adapter classes named by dotted path."""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resource_server_async.clusters.base import BaseCluster
    from resource_server_async.endpoints.base import BaseEndpoint


class AdapterError(ValueError):
    """The dotted path does not name a usable adapter class; the message says why."""


@cache
def _import_class(path: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise AdapterError(f"{path!r} is not a dotted path of the form 'package.module.ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AdapterError(f"cannot import module {module_name!r} for {path!r}: {exc}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise AdapterError(f"module {module_name!r} has no class {class_name!r}")
    if not isinstance(cls, type):
        raise AdapterError(f"{path!r} is not a class")
    return cls


def cluster_adapter_class(path: str) -> type[BaseCluster]:
    from resource_server_async.clusters.base import BaseCluster

    cls = _import_class(path)
    if not issubclass(cls, BaseCluster):
        raise AdapterError(f"{path!r} is not a subclass of {BaseCluster.__module__}.BaseCluster")
    return cls


def endpoint_adapter_class(path: str) -> type[BaseEndpoint]:
    from resource_server_async.endpoints.base import BaseEndpoint

    cls = _import_class(path)
    if not issubclass(cls, BaseEndpoint):
        raise AdapterError(f"{path!r} is not a subclass of {BaseEndpoint.__module__}.BaseEndpoint")
    return cls
