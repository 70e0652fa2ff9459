"""Script calls packed by hand (admission/resp.py) are the bytes hiredis packs, and the table of
values remembered packed stays within its bound."""

from __future__ import annotations

import hiredis
import pytest

from resource_server_async.admission import resp
from resource_server_async.admission.redis_pipe import Script


def test_a_call_packs_as_hiredis_packs_it() -> None:
    script = Script("return 1")
    keys = ["limits:u:1:r", "alloc:é"]
    args = [3, -1, 10**15, "ticket-1", 0.25, b"raw", "0.0"]
    expected = hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
    assert resp.packed_call(script.by_sha, keys, args) == expected
    whole = hiredis.pack_command(("EVAL", script.text, 0))
    assert resp.packed_call(script.whole, [], []) == whole


def test_the_values_remembered_are_bounded() -> None:
    for n in range(resp.PACKED_VALUES * 2):
        resp.packed_call(b"", [f"ticket-{n}"], [n])
    assert 0 < resp.packed_values() <= resp.PACKED_VALUES
    # Still right after the table started afresh.
    script = Script("return 2")
    expected = hiredis.pack_command(("EVALSHA", script.sha, 1, "k", 7))
    assert resp.packed_call(script.by_sha, ["k"], [7]) == expected


def test_an_argument_of_another_type_is_refused() -> None:
    with pytest.raises(TypeError, match="bytes, str, int or float"):
        resp.bulk(None)
