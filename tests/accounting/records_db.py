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


def rollup_totals(database_url: str) -> list[tuple[int, int]]:
    """(requests, tokens) as the records count them, then as UsageHour and UsageDay do."""
    sqls = [
        f"SELECT COUNT(*), COALESCE(SUM(total_tokens), 0) FROM {TABLE}",
        *(
            "SELECT COALESCE(SUM(request_count), 0), COALESCE(SUM(total_tokens), 0) "
            f"FROM resource_server_async_{table}"
            for table in ("usagehour", "usageday")
        ),
    ]
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return [tuple(conn.execute(sql).fetchone()) for sql in sqls]
    import psycopg

    with psycopg.connect(database_url) as conn:
        return [tuple(conn.execute(sql).fetchone() or (0, 0)) for sql in sqls]
