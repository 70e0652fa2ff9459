"""The submit document built by compute/submission.py is the one the SDK's Batch would send."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from globus_compute_sdk.serialize import ComputeSerializer
from globus_compute_sdk.serialize.concretes import JSONData

from resource_server_async.compute import once
from resource_server_async.compute.submission import SubmissionBuilder, is_json_data

FUNCTION = "A9D3C2B1-0E4F-4A6B-8C7D-1F2E3D4C5B6A"  # upper case: the SDK's key is normalised


class Colour(enum.StrEnum):
    RED = "red"


PAYLOADS: list[tuple[Any, ...]] = [
    ({"model_params": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}},),
    (
        {
            "model_params": {
                "openai_endpoint": "chat/completions",
                "api_port": 8000,
                "temperature": 0.7,
                "top_p": 1e-300,
                "seed": 2**80,
                "stream": True,
                "stop": None,
                "logit_bias": {"50256": -100},
                "content": "déjà vu — 日本語 \U0001f600",
                "nested": [[1, [2, [3, {"x": []}]]], (), {}],
            }
        },
    ),
    # Past pickle's 64 KiB frame: a large string is written outside the frames.
    ({"model_params": {"messages": [{"role": "user", "content": "x" * 200_000}] * 3}},),
    # Not JSON data: the SDK's own path (dill), the same document all the same.
    ({"model_params": {"colour": Colour.RED, "bytes": b"\x00\x01", "set": {1, 2}}},),
]


def _sdk_document(serializer: ComputeSerializer, arg_lists: list[tuple[Any, ...]]) -> dict:
    batch = once.new_batch(serializer, once.runtime())
    for args in arg_lists:
        batch.add(FUNCTION, args)
    return batch.prepare()


@pytest.mark.parametrize("args", PAYLOADS)
def test_each_document_is_the_sdk_batch_byte_for_byte(args: tuple[Any, ...]) -> None:
    serializer = ComputeSerializer()
    builder = SubmissionBuilder(serializer, once.runtime())
    assert builder.document(FUNCTION, [args, args]) == _sdk_document(serializer, [args, args])


def test_the_endpoint_reads_back_the_arguments() -> None:
    serializer = ComputeSerializer()
    document = SubmissionBuilder(serializer, once.runtime()).document(FUNCTION, [PAYLOADS[1]])
    (packed,) = document["tasks"][FUNCTION.lower()]
    args, kwargs = (serializer.deserialize(part) for part in serializer.unpack_buffers(packed))
    assert args == PAYLOADS[1] and kwargs == {}


def test_another_data_serializer_goes_through_the_sdk() -> None:
    serializer = ComputeSerializer(strategy_data=JSONData())
    builder = SubmissionBuilder(serializer, once.runtime())
    assert builder.document(FUNCTION, [PAYLOADS[0]]) == _sdk_document(serializer, [PAYLOADS[0]])


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ({"a": [1, 2.5, "s", None, True, {"b": ()}]}, True),
        ({1: "int key"}, False),
        (Colour.RED, False),
        (b"bytes", False),
        ({"deep": [[[[[]]]]]}, True),
    ],
)
def test_what_counts_as_json_data(value: Any, plain: bool) -> None:
    assert is_json_data(value) is plain


def test_a_structure_deeper_than_any_accepted_body_takes_the_sdk_path() -> None:
    deep: Any = []
    for _ in range(200):
        deep = [deep]
    assert not is_json_data(deep)
