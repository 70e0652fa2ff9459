"""The body of a submission (`POST /v3/endpoints/{id}/submit`): what the SDK's `Batch.prepare()`
sends, built for less CPU.

Per task, the SDK's Batch pickles the arguments with dill, whose pickler is pickle's pure-Python
one (about 75 µs for an inference payload), and each `prepare()` copies the runtime description
with `dataclasses.asdict` (about 37 µs): most of a submission's own cost at one task at a time
(bench/RESULTS.md, Globus Compute path). Our functions' arguments are JSON data (the request's
body and a few settings), which dill pickles to exactly the bytes of the C pickler at dill's
protocol, and the runtime does not change while the process runs. Anything else (a Client with
another data serializer, an argument that is not JSON data) goes through the SDK's Batch.
"""

from __future__ import annotations

import codecs
import functools
import pickle
import uuid
from dataclasses import asdict
from typing import Any

import dill
from globus_compute_sdk.sdk.batch import UserRuntime
from globus_compute_sdk.serialize import ComputeSerializer
from globus_compute_sdk.serialize.concretes import DillDataBase64
from globus_compute_sdk.serialize.facade import pack_buffers

from resource_server_async.compute import once

_SCALARS = frozenset({str, int, float, bool, type(None)})
# Deeper than any request body the gateway accepts (api/http.py bounds JSON depth); past it,
# the SDK's own path.
_MAX_DEPTH = 128


@functools.lru_cache(maxsize=4096)
def canonical_uuid(text: str) -> str:
    """The UUID as the service writes it (lower case, hyphens); ValueError if it is none.
    Cached: the catalog's few endpoint and function UUIDs, parsed once each, not per task."""
    return str(uuid.UUID(text))


def is_json_data(value: Any, depth: int = 0) -> bool:
    """Only the exact JSON types (no subclasses: an Enum that is a str pickles differently)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if depth >= _MAX_DEPTH:
        return False
    if kind is dict:
        return all(
            type(key) is str and is_json_data(item, depth + 1) for key, item in value.items()
        )
    if kind is list or kind is tuple:
        return all(is_json_data(item, depth + 1) for item in value)
    return False


class SubmissionBuilder:
    """Submit documents for one SDK Client's serializer and runtime description."""

    def __init__(self, serializer: ComputeSerializer, runtime: UserRuntime) -> None:
        self._serializer = serializer
        self._runtime = runtime
        self._runtime_document = asdict(runtime)
        # The shortcut stands for DillDataBase64 alone: another strategy has its own bytes.
        self._plain = type(serializer.data_serializer) is DillDataBase64
        self._no_kwargs = serializer.serialize({})

    def document(self, function_uuid: str, arg_lists: list[tuple[Any, ...]]) -> dict[str, Any]:
        """The JSON document submitting one task per argument tuple of `function_uuid`."""
        if not (self._plain and all(is_json_data(args) for args in arg_lists)):
            batch = once.new_batch(self._serializer, self._runtime)
            for args in arg_lists:
                batch.add(function_uuid, args)
            return batch.prepare()
        tasks = [pack_buffers([self._serialized(args), self._no_kwargs]) for args in arg_lists]
        return {
            "create_queue": False,
            "tasks": {canonical_uuid(function_uuid): tasks},
            "user_runtime": self._runtime_document,
        }

    @staticmethod
    def _serialized(data: Any) -> str:
        """DillDataBase64.serialize(data), for JSON data: the same pickle, by the C pickler."""
        pickled = pickle.dumps(data, protocol=dill.settings["protocol"])
        return DillDataBase64.identifier + codecs.encode(pickled, "base64").decode()
