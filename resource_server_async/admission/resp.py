"""Script calls in Redis's wire format (RESP), packed from arguments remembered already packed.

Why not hiredis.pack_command: it formats every argument's length with C's sprintf and copies
it through two buffers, ~2,000 instructions per argument (callgrind), and a request's admission
calls carry some forty arguments. Almost all of them repeat from request to request (keys,
capacities, the window, budgets), so each distinct value is packed once and its bytes are
looked up after that: a dictionary read per argument, in C (`map` over `dict.__getitem__`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Distinct argument values remembered packed. Values unique to one call (ticket ids, the clock)
# pass through too; when the table is full it starts afresh, which costs a few re-packings.
PACKED_VALUES = 4096


def bulk(value: Any) -> bytes:
    """One argument as a RESP bulk string: bytes as they are, text as UTF-8, numbers in
    decimal (floats as repr, which Lua's tonumber reads back exactly)."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    elif isinstance(value, int):
        data = b"%d" % value
    elif isinstance(value, float):
        data = repr(value).encode()
    else:
        raise TypeError(f"a Redis argument must be bytes, str, int or float, not {type(value)}")
    return b"$%d\r\n%b\r\n" % (len(data), data)


class _Packed(dict[Any, bytes]):
    """Packed arguments by value. (Equal numbers share an entry: 1, 1.0 and True pack as "1",
    which every script reads with tonumber.)"""

    def __missing__(self, value: Any) -> bytes:
        data = bulk(value)
        if len(self) >= PACKED_VALUES:
            self.clear()
        self[value] = data
        return data


_packed = _Packed()
# One argument packed, through the table of values remembered (for values that repeat): the
# dictionary's own lookup, so that no Python function runs for a value already packed.
packed_value = _lookup = _packed.__getitem__


class Packed:
    """A call's key count, keys and arguments, packed already: `count` items in `data` (a call
    whose parts are prepared once, joint.py)."""

    __slots__ = ("count", "data")

    def __init__(self, count: int, data: bytes) -> None:
        self.count = count
        self.data = data


def packed_call(head: bytes, keys: Sequence[Any], args: Sequence[Any] | Packed) -> bytes:
    """`head` (the command and script, packed: two items) with the key count, keys and args
    (or, `args` a Packed, with those packed already)."""
    if isinstance(args, Packed):
        return b"*%d\r\n%b%b" % (args.count + 2, head, args.data)
    return b"*%d\r\n%b%b%b%b" % (
        3 + len(keys) + len(args),
        head,
        _lookup(len(keys)),
        b"".join(map(_lookup, keys)),
        b"".join(map(_lookup, args)),
    )


def packed_values() -> int:
    """How many values are remembered (tests: the table stays within PACKED_VALUES)."""
    return len(_packed)
