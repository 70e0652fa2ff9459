"""The record writer through a real database outage: a private PostgreSQL server stopped for
20 s while a gateway answers a few hundred requests, then started again. Every record arrives,
none twice, and the roll-up counts each once. Runs on both test passes: the gateway and its
database are the test's own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from tests.accounting.private_postgres import PrivatePostgres, unavailable
from tests.accounting.records_db import fetch_records, rollup_totals
from tests.fake_backend import FakeBackend
from tests.inference.catalog_files import CatalogFiles
from tests.servers import GatewayServer
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(unavailable()), reason=unavailable() or "available"),
]

OUTAGE_SECONDS = 20.0
BEFORE, DURING, AFTER = 50, 200, 50
# Small enough that the outage overflows it (half stays in memory, the rest goes to the
# spool), large enough for the burst after the restart while the writer drains the spool:
# records that arrive then wait in the queue, and a full queue drops them.
QUEUE_SIZE = 200


@pytest.fixture
def database() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().init()
    server.start()
    try:
        yield server
    finally:
        server.remove()


def _ask(client: openai.OpenAI, rid: str) -> None:
    answer = client.chat.completions.create(
        model="fake-model",
        messages=[{"role": "user", "content": "outage"}],
        extra_headers={"x-request-id": rid},
    )
    assert answer.choices[0].message.content == "Echo: outage"


def _records_total(gateway: GatewayServer, state: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f'gateway_records_total{{state="{state}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_every_record_arrives_once_after_the_database_was_down_for_20_s(
    tmp_path: Path, database: PrivatePostgres
) -> None:
    url = database.create_database("gateway")
    files = CatalogFiles()
    with FakeBackend() as backend:
        files.cluster("alpha", operations=["chat/completions"])
        files.endpoint("alpha", "fake-model", backend.url)
        env = {
            "DATABASE_URL": url,
            "RECORD_QUEUE_SIZE": str(QUEUE_SIZE),
            "RECORD_BATCH_SIZE": "25",
            "RECORD_RETRY_SECONDS": "0.5",
            # The key's check is cached past the outage (a cold key needs the database).
            "API_KEY_CACHE_SECONDS": "300",
        }
        with GatewayServer(tmp_path, fixtures=files.write(tmp_path / "fixtures"), env=env) as gw:
            client = gw.openai_client()
            spool = tmp_path / "data" / "record-spool"
            ids = [f"outage-{index}" for index in range(BEFORE + DURING + AFTER)]

            def rows() -> list[dict]:
                return fetch_records(url, "request_id LIKE ?", ("outage-%",))

            for rid in ids[:BEFORE]:
                _ask(client, rid)
            wait_until(lambda: len(rows()) == BEFORE)

            database.stop()
            # The load's own schedule over the outage: DURING requests spread over 20 s.
            stopped = time.monotonic()
            for index, rid in enumerate(ids[BEFORE : BEFORE + DURING]):
                due = stopped + index * OUTAGE_SECONDS / DURING
                time.sleep(max(0.0, due - time.monotonic()))
                _ask(client, rid)
            # The writer kept what the database refused: past half its queue, on disk.
            wait_until(lambda: any(spool.glob("*.jsonl")))
            assert _records_total(gw, "spooled") > 0
            time.sleep(max(0.0, stopped + OUTAGE_SECONDS - time.monotonic()))
            database.start()

            for rid in ids[BEFORE + DURING :]:
                _ask(client, rid)
            try:
                wait_until(lambda: len(rows()) >= len(ids), timeout=60)
            except AssertionError:
                spooled = sorted(path.name for path in spool.iterdir())
                raise AssertionError(
                    f"{len(rows())} of {len(ids)} records; spool {spooled}; "
                    f"gateway log:\n{gw.log_text()[-3000:]}"
                ) from None
            wait_until(lambda: not any(spool.iterdir()))

            written = rows()
            assert sorted(row["request_id"] for row in written) == sorted(ids)  # all, once
            assert len({row["request_key"] for row in written}) == len(ids)
            assert all(row["status"] == 200 and row["total_tokens"] for row in written)
            assert _records_total(gw, "dropped") == 0
            # The spool replayed into the roll-up as into the records: each record once.
            records, by_hour, by_day = rollup_totals(url)
            assert records == by_hour == by_day and records[0] >= len(ids)
