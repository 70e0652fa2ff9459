"""The usage bounds: queries waiting per worker (USAGE_MAX_PENDING), rows per answer
(USAGE_MAX_ROWS)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import override_settings

from resource_server_async.accounting.usage_reader import UsageReader
from resource_server_async.api.views.usage import UsageParameters, answer
from resource_server_async.auth.principal import Principal
from resource_server_async.errors import GatewayError
from tests.usage.records import record


async def test_queries_beyond_the_pending_bound_answer_503() -> None:
    reader = UsageReader(max_pending=3)
    release = threading.Event()
    waiting = [asyncio.ensure_future(reader.run(release.wait, 10)) for _ in range(3)]
    await asyncio.sleep(0)  # let them start
    assert reader.pending == 3
    with pytest.raises(GatewayError) as refused:
        await reader.run(release.wait, 10)
    assert (refused.value.status, refused.value.code) == (503, "usage_busy")
    assert refused.value.headers["Retry-After"] == "1"
    release.set()
    assert await asyncio.gather(*waiting) == [True, True, True]
    assert reader.pending == 0
    assert await reader.run(lambda: "answered") == "answered"  # room again
    await reader.aclose()


@pytest.mark.django_db
@override_settings(USAGE_MAX_ROWS=2)
def test_an_answer_beyond_the_row_bound_is_refused() -> None:
    day = date(2026, 11, 2)
    for offset in range(3):
        record(datetime(2026, 11, 2 + offset, 12, tzinfo=UTC), principal_id="p")
    me = Principal(id="p", username="p", kind="user")

    def ask(days: int) -> UsageParameters:
        return UsageParameters(
            start=day, end=day + timedelta(days=days - 1), principal="", group="", cluster="",
            model="",
        )  # fmt: skip

    assert len(answer(me, ask(2))["data"]) == 2
    with pytest.raises(GatewayError) as refused:
        answer(me, ask(3))
    assert (refused.value.status, refused.value.code) == (400, "too_many_rows")
