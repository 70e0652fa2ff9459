"""/resource_server/ready answers 503 once the drain has begun, so proxies stop sending."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest
from starlette.requests import Request

from resource_server_async import drain
from resource_server_async.api.views.ready import ready_route


@pytest.fixture
def draining() -> Iterator[drain.Drain]:
    state = drain.current()
    loop = asyncio.new_event_loop()
    state.begin(loop, 60)
    try:
        yield state
    finally:
        state.stop()
        state.draining = False
        loop.close()


def test_ready_answers_503_while_draining(draining: drain.Drain) -> None:
    request = Request({"type": "http", "method": "GET", "path": "/resource_server/ready"})
    answer = asyncio.run(ready_route().endpoint(request))  # type: ignore[arg-type]
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert orjson.loads(bytes(answer.body))["status"] == "draining"
