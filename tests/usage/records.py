"""Request records made directly, for the window and grouping edge cases of the usage sums."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from resource_server_async.models import RequestRecord

_numbers = itertools.count(1)


def record(received_at: datetime, **fields: Any) -> RequestRecord:
    """One record as the writer would store it (a success of 10 + 5 tokens unless told)."""
    number = next(_numbers)
    values: dict[str, Any] = {
        "request_key": f"test-{number}",
        "request_id": f"req-{number}",
        "received_at": received_at,
        "route": "cluster",
        "operation": "chat/completions",
        "principal_id": "alice-id",
        "username": "alice@example.org",
        "credential": "globus",
        "cluster": "alpha",
        "framework": "vllm",
        "model": "model-a",
        "status": 200,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }
    values.update(fields)
    return RequestRecord.objects.create(**values)
