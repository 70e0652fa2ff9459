"""The project's own cluster-side functions: their entry points, source, and local UUIDs."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ProjectFunction:
    """A function in compute_functions/ that operators register with Globus Compute."""

    name: str  # what register_functions prints
    path: str  # dotted path of the entry point
    # The UUID that stands for it under COMPUTE_EXECUTOR=local (fixed, so fixtures can name it).
    local_uuid: str
    description: str

    @property
    def module_name(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def entry_point(self) -> str:
        return self.path.rpartition(".")[2]

    def source(self) -> str:
        """The module's source: registered whole, since the module is self-contained."""
        return inspect.getsource(importlib.import_module(self.module_name))


INFERENCE = ProjectFunction(
    "inference",
    "compute_functions.inference.inference_function",
    "3b2a7855-5474-5021-b5d6-7a48c861e9b9",
    "Calls the node's OpenAI-compatible model server; streams through the gateway's side channel",
)
PBS_STATUS = ProjectFunction(
    "pbs-status",
    "compute_functions.scheduler_status.pbs_status",
    "649c18bc-e52b-5038-ba48-cf30e023b58b",
    "Model jobs of the service user on a PBS cluster, and its free nodes",
)
SLURM_STATUS = ProjectFunction(
    "slurm-status",
    "compute_functions.scheduler_status.slurm_status",
    "6c98b4a9-f044-518c-aaec-0adf030b005f",
    "Model jobs of the service user on a Slurm cluster, and its idle nodes",
)
BATCH = ProjectFunction(
    "batch",
    "compute_functions.batch.batch_function",
    "0d9f3c36-5b1e-5c43-a8f4-2f6c1c8e7a51",
    "Runs a batch input file on the cluster's filesystem through the node's model server",
)
PROJECT_FUNCTIONS = (INFERENCE, PBS_STATUS, SLURM_STATUS, BATCH)


class FunctionPathError(ValueError):
    """A dotted path that does not name a callable."""


def import_callable(path: str) -> Callable[..., Any]:
    module_name, _, attribute = path.rpartition(".")
    if not module_name:
        raise FunctionPathError(f"{path!r} is not a dotted path 'package.module.function'")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise FunctionPathError(f"cannot import {path!r}: {exc}") from None
    if not callable(target):
        raise FunctionPathError(f"{path!r} is not callable")
    return target


def local_function_paths(overrides: dict[str, str]) -> dict[str, str]:
    """{function UUID: dotted path}: the project's functions, then the operator's mapping."""
    paths = {function.local_uuid: function.path for function in PROJECT_FUNCTIONS}
    paths.update({str(uuid).lower(): str(path) for uuid, path in overrides.items()})
    return paths
