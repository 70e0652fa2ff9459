"""Request records as rows: plain values made from an outcome, inserted many per SQL statement.

Inserted without the ORM, skipping keys already there: model instances and bulk_create cost
~100-140 µs of the gateway's CPU per record (measured on PostgreSQL; psycopg parses a long
multi-row statement with a regex per placeholder). On PostgreSQL a batch is one statement with
one JSON parameter (~2 µs a record); elsewhere (SQLite) one executemany in a transaction.
The records inserted (not those skipped) are folded into the roll-up in the same
transaction (accounting/rollup.py): on PostgreSQL in the same statement.
"""

from __future__ import annotations

import contextlib
import functools
from datetime import UTC, datetime
from typing import Any

import orjson

from resource_server_async.accounting import rollup
from resource_server_async.accounting.outcome import RequestOutcome

# Fields of RequestRecord copied from the outcome as they are.
PLAIN_FIELDS = (
    "request_id",
    "route",
    "operation",
    "client_address",
    "principal_id",
    "username",
    "idp_domain",
    "credential",
    "api_key_id",
    "project",
    "cluster",
    "framework",
    "model",
    "endpoint_slug",
    "stream",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "usage_estimated",
    "compute_task_id",
    "response_time",
    "throughput_tokens_per_second",
    "disconnected",
    "prompt",
    "answer",
)
# Every column a row fills, in the order of the INSERT's values.
COLUMNS = (
    *PLAIN_FIELDS,
    "request_key",
    "received_at",
    "groups",
    "duration",
    "upstream_duration",
    "time_to_first_token",
)


def as_row(outcome: RequestOutcome, key: str) -> dict[str, Any]:
    """The record as plain JSON-able values (what the spool file holds, one per line)."""
    row = {name: getattr(outcome, name) for name in PLAIN_FIELDS}
    row["request_key"] = key
    row["received_at"] = outcome.received_at
    row["groups"] = sorted(outcome.groups)
    row["duration"] = outcome.duration
    row["upstream_duration"] = outcome.upstream_duration
    row["time_to_first_token"] = outcome.time_to_first_token
    return row


def insert_rows(rows: list[dict[str, Any]]) -> None:
    """One INSERT of the batch (PostgreSQL) or one executemany (SQLite); rows already there
    (same request_key) are skipped, the others added to the roll-up. Runs in the writer's
    thread."""
    from django.db import close_old_connections, connection, transaction

    if not rows:
        return
    for row in rows:
        row.setdefault("project", "")  # spooled before the project column
    try:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(_postgres_statement(), [orjson.dumps(rows).decode()])
        else:
            sql = _statement(connection)
            ops = connection.ops  # once: each attribute of the connection proxy costs ~20 µs
            values = [_values(row, ops) for row in rows]
            with transaction.atomic(), connection.cursor() as cursor:
                keys = orjson.dumps([row["request_key"] for row in rows]).decode()
                cursor.execute(_present_statement(connection), [keys])
                present = {key for (key,) in cursor.fetchall()}
                cursor.executemany(sql, values)
                fresh = [row["request_key"] for row in rows if row["request_key"] not in present]
                if fresh:
                    _fold(cursor, connection, orjson.dumps(fresh).decode())
    except Exception:
        # A broken connection is not reused for the next attempt.
        with contextlib.suppress(Exception):
            connection.close()
        raise
    finally:
        close_old_connections()


@functools.cache
def _postgres_statement() -> str:
    """PostgreSQL: the whole batch as one JSON parameter, unpacked by the server
    (json_to_recordset), so the gateway only serialises it (~1 µs a row)."""
    from django.db import connection

    from resource_server_async.models import RequestRecord

    ops = connection.ops
    fields = {field.column: field for field in RequestRecord._meta.concrete_fields}
    kinds = ", ".join(
        f"{ops.quote_name(name)} "
        + ("double precision" if name == "received_at" else str(fields[name].db_type(connection)))
        for name in COLUMNS
    )
    columns = ", ".join(ops.quote_name(name) for name in COLUMNS)
    chosen = ", ".join(
        "to_timestamp(received_at)" if name == "received_at" else ops.quote_name(name)
        for name in COLUMNS
    )
    table = ops.quote_name(RequestRecord._meta.db_table)
    returned = ", ".join(ops.quote_name(name) for name in rollup.RECORD_COLUMNS)
    # The roll-up reads what the INSERT returns: only the records it did not skip.
    usage = ", ".join(
        f"usage_{period} AS ({rollup.usage_statement(connection, 'inserted', period=period)})"
        for period in rollup.USAGE_PERIODS
    )
    latency = rollup.latency_statement(connection, "inserted")
    return (
        f"WITH inserted AS (INSERT INTO {table} ({columns}) SELECT {chosen} "
        f"FROM json_to_recordset(%s::json) AS r({kinds}) ON CONFLICT DO NOTHING "
        f"RETURNING {returned}), {usage} {latency}"
    )


def _present_statement(connection: Any) -> str:
    """SQLite: which keys of the batch (a JSON list) are recorded already."""
    from resource_server_async.models import RequestRecord

    table = connection.ops.quote_name(RequestRecord._meta.db_table)
    return f"SELECT request_key FROM {table} WHERE request_key IN (SELECT value FROM json_each(%s))"


def _fold(cursor: Any, connection: Any, keys: str) -> None:
    """SQLite: add the records just inserted (their keys, a JSON list) to the roll-up."""
    from resource_server_async.models import RequestRecord

    table = connection.ops.quote_name(RequestRecord._meta.db_table)
    where = "request_key IN (SELECT value FROM json_each(%s))"
    for period in rollup.USAGE_PERIODS:
        cursor.execute(rollup.usage_statement(connection, table, where, period), [keys])
    # The latency statement reads the records once per measure.
    cursor.execute(rollup.latency_statement(connection, table, where), [keys] * 2)


def _statement(connection: Any) -> str:
    """The one-row INSERT that skips a key already there, in the database's dialect."""
    from django.db.models.constants import OnConflict

    from resource_server_async.models import RequestRecord

    ops = connection.ops
    table = ops.quote_name(RequestRecord._meta.db_table)
    columns = ", ".join(ops.quote_name(name) for name in COLUMNS)
    values = ", ".join(["%s"] * len(COLUMNS))
    insert = ops.insert_statement(on_conflict=OnConflict.IGNORE)
    sql = f"{insert} {table} ({columns}) VALUES ({values})"
    tail = ops.on_conflict_suffix_sql([], OnConflict.IGNORE, None, None)
    return f"{sql} {tail}" if tail else sql


def _values(row: dict[str, Any], ops: Any) -> list[Any]:
    values = [row[name] for name in PLAIN_FIELDS]
    values.append(row["request_key"])
    values.append(ops.adapt_datetimefield_value(datetime.fromtimestamp(row["received_at"], UTC)))
    values.append(ops.adapt_json_value(row["groups"], None))
    values.append(row["duration"])
    values.append(row["upstream_duration"])
    values.append(row["time_to_first_token"])
    return values
