"""The roll-up of request records (UsageHour, UsageDay, LatencyHour): the SQL that folds
records into it, one statement per table, shared by the record writer (accounting/rows.py), the
migration's backfill, `rebuild` (tests, the dashboard bench) and the same on PostgreSQL and
SQLite.

The fold is SQL rather than Python: on PostgreSQL it reads the rows the record INSERT returns
(a data-modifying WITH), so a record skipped as already there (a batch written twice, a spool
replayed) is not counted twice, and the gateway's process does no per-record work for it.
Measured with bench/writer_cpu.py (10,000 records, batches of 500): PostgreSQL 3.5-3.9 µs of
the gateway's CPU per record without the roll-up and 3.9 µs with it (the database's own time
per record, in the writer's thread: ~60-95 µs before, ~90-125 µs after); SQLite, where the
database runs in the process, 47 µs before and 63 µs after.
"""

from __future__ import annotations

from typing import Any

# Latency bins (upper bounds, seconds): percentiles are read from a histogram the database
# counts, since SQLite has no percentile aggregate. A percentile is its bin's upper bound.
LATENCY_BINS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
OVERFLOW_BIN = len(LATENCY_BINS)  # slower than the last bound: shown as that bound
# LatencyHour.measure -> the record's column.
LATENCY_MEASURES = ("duration", "time_to_first_token")
# The record columns the fold reads (what the writer's INSERT returns on PostgreSQL).
RECORD_COLUMNS = (
    "received_at", "cluster", "framework", "model", "endpoint_slug", "principal_id", "username",
    "project", "status", "error_code", "prompt_tokens", "completion_tokens", "total_tokens",
    "duration", "time_to_first_token",
)  # fmt: skip


# The periods of the usage roll-up: their model's name and its time column.
USAGE_PERIODS = ("hour", "day")


def usage_statement(connection: Any, source: str, where: str = "true", period: str = "hour") -> str:
    """INSERT ... SELECT ... GROUP BY over `source` (a table or CTE with RECORD_COLUMNS) into
    UsageHour or UsageDay (`period`), adding to the rows already there."""
    from resource_server_async.models import USAGE_DIMENSIONS, UsageDay, UsageHour

    q = connection.ops.quote_name
    table = q((UsageHour if period == "hour" else UsageDay)._meta.db_table)
    dimensions = [q(name) for name in USAGE_DIMENSIONS]
    key = [q(period), *dimensions]
    sums = {
        "request_count": "COUNT(*)",
        "prompt_tokens": f"COALESCE(SUM({q('prompt_tokens')}), 0)",
        "completion_tokens": f"COALESCE(SUM({q('completion_tokens')}), 0)",
        "total_tokens": f"COALESCE(SUM({q('total_tokens')}), 0)",
        "duration_sum": f"COALESCE(SUM({q('duration')}), 0)",
        "duration_count": f"COUNT({q('duration')})",
        "ttft_sum": f"COALESCE(SUM({q('time_to_first_token')}), 0)",
        "ttft_count": f"COUNT({q('time_to_first_token')})",
    }
    columns = ", ".join([*key, *(q(name) for name in sums)])
    chosen = ", ".join([_start(connection, period), *dimensions, *sums.values()])
    numbered = ", ".join(str(i + 1) for i in range(len(key)))
    added = ", ".join(f"{q(n)} = {table}.{q(n)} + excluded.{q(n)}" for n in sums)
    # ORDER BY: concurrent writers (one per worker process) take the rows' locks in one order.
    return (
        f"INSERT INTO {table} ({columns}) SELECT {chosen} FROM {source} WHERE {where} "
        f"GROUP BY {numbered} ORDER BY {numbered} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {added}"
    )


def latency_statement(connection: Any, source: str, where: str = "true") -> str:
    """The same for LatencyHour: records per hour, measure and bin."""
    from resource_server_async.models import LatencyHour

    q = connection.ops.quote_name
    table = q(LatencyHour._meta.db_table)
    arms = " UNION ALL ".join(
        f"SELECT {_start(connection, 'hour')} AS {q('hour')}, '{measure}' AS {q('measure')}, "
        f"{_bin_of(q(measure))} AS {q('bin')} FROM {source} "
        f"WHERE ({where}) AND {q(measure)} IS NOT NULL"
        for measure in LATENCY_MEASURES
    )
    key = f"{q('hour')}, {q('measure')}, {q('bin')}"
    count = q("count")
    # WHERE true: SQLite reads an ON right after a FROM as a join's.
    return (
        f"INSERT INTO {table} ({key}, {count}) SELECT {key}, COUNT(*) FROM ({arms}) AS binned "
        f"WHERE true GROUP BY {key} ORDER BY {key} "
        f"ON CONFLICT ({key}) DO UPDATE SET {count} = {table}.{count} + excluded.{count}"
    )


def rebuild(using: str = "default") -> None:
    """The roll-up made again from every record there is (the migration's backfill; tests and
    the bench after filling records without the writer). Records already purged are lost."""
    from django.db import connections, transaction

    from resource_server_async.models import LatencyHour, RequestRecord, UsageDay, UsageHour

    connection = connections[using]
    records = connection.ops.quote_name(RequestRecord._meta.db_table)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for model in (UsageHour, UsageDay, LatencyHour):
            model.objects.using(using).all().delete()
        for period in USAGE_PERIODS:
            cursor.execute(usage_statement(connection, records, period=period))
        cursor.execute(latency_statement(connection, records))


def _start(connection: Any, period: str) -> str:
    """The start of a record's hour or (UTC) day; SQLite holds times as
    'YYYY-MM-DD HH:MM:SS...' in UTC."""
    column = connection.ops.quote_name("received_at")
    if connection.vendor == "postgresql":
        return f"date_trunc('{period}', {column})"  # the session's time zone is UTC (Django)
    if period == "hour":
        return f"substr({column}, 1, 13) || ':00:00'"
    return f"substr({column}, 1, 10) || ' 00:00:00'"


def _bin_of(column: str) -> str:
    """The index of a value's latency bin, as dashboard.queries reads it back."""
    whens = " ".join(f"WHEN {column} <= {bound} THEN {i}" for i, bound in enumerate(LATENCY_BINS))
    return f"CASE {whens} ELSE {OVERFLOW_BIN} END"
