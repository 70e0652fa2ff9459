"""Reads a gateway's request records straight from its database (SQLite or PostgreSQL)."""

from __future__ import annotations

import sqlite3
from typing import Any

TABLE = "resource_server_async_requestrecord"


def fetch_records(database_url: str, where: str = "", params: tuple[Any, ...] = ()) -> list[dict]:
    """Every record (as dicts, oldest first), optionally filtered by an SQL condition."""
    sql = f"SELECT * FROM {TABLE}" + (f" WHERE {where}" if where else "") + " ORDER BY id"
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, params)]
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute(sql.replace("?", "%s"), params))
