"""The record writer's cost in the gateway's process: CPU (and wall) time per record of
`insert_rows` for 10,000 records in batches of RECORD_BATCH_SIZE, on the database of
DATABASE_URL (migrated). Run it on two checkouts to compare them (the roll-up's cost):

    DATABASE_URL=postgres://... .venv/bin/python -m bench.writer_cpu
"""

from __future__ import annotations

import os
import time

RECORDS = 10_000
BATCH = 500
ROUNDS = 3


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_gateway.settings")
    os.environ.setdefault("GATEWAY_DEV_MODE", "1")
    import django

    django.setup()
    from django.db import connection

    from resource_server_async.accounting.outcome import RequestOutcome
    from resource_server_async.accounting.rows import as_row, insert_rows

    def rows(round_: int) -> list[dict[str, object]]:
        made = []
        now = time.time()
        for i in range(RECORDS):
            outcome = RequestOutcome(
                request_id=f"cpu-{round_}-{i}",
                received_at=now - i * 0.5,
                started=0.0,
                route="cluster",
                operation="chat/completions",
                principal_id=f"user-{i % 40}",
                username=f"user{i % 40}@example.org",
                project=f"project-{i % 12}",
                cluster=f"cluster-{i % 3}",
                framework="vllm",
                model=f"model-{i % 6}",
                endpoint_slug=f"cluster-{i % 3}-vllm-model-{i % 6}",
                status=502 if i % 20 == 0 else 200,
            )
            outcome.set_usage(10 + i % 500, 5 + i % 300)
            outcome.ended = 0.05 + (i % 997) / 200
            outcome.first_byte = 0.01 + (i % 389) / 400
            made.append(as_row(outcome, f"cpu-{round_}-{i}-{now}"))
        return made

    cpu, wall = [], []
    for round_ in range(ROUNDS):
        batches = rows(round_)
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        for start in range(0, RECORDS, BATCH):
            insert_rows(batches[start : start + BATCH])
        cpu.append((time.process_time() - started_cpu) / RECORDS * 1e6)
        wall.append((time.perf_counter() - started_wall) / RECORDS * 1e6)
    print(
        f"{connection.vendor}: {RECORDS:,} records in batches of {BATCH}, best of {ROUNDS}: "
        f"{min(cpu):.1f} µs CPU and {min(wall):.1f} µs wall per record"
    )


if __name__ == "__main__":
    main()
