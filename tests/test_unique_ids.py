"""Ids for requests, records and tickets: unique within a process, across processes and forks."""

from __future__ import annotations

import os
import subprocess
import sys

from resource_server_async.unique_ids import new_id


def test_ids_look_like_uuid_hex_and_never_repeat_in_a_process() -> None:
    ids = [new_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids[:10])


def test_other_processes_and_forked_children_draw_their_own_prefix() -> None:
    script = "from resource_server_async.unique_ids import new_id; print(new_id())"
    others = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(3)
    }
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its first id, to the parent
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    forked = os.read(read, 64).decode()
    os.close(read)
    mine = new_id()
    prefixes = {i[:16] for i in (*others, forked, mine)}
    assert len(prefixes) == 5
