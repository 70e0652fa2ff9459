"""Every bound a caller can grow, measured: upload bytes, lines, the per-principal storage quota,
MAX_BATCHES_PER_USER (tests/batches/conftest.py LIMITS)."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from tests.batches.conftest import LIMITS, chat_line, client, jsonl
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

MAX_BYTES = int(LIMITS["BATCH_FILE_MAX_BYTES"])
MAX_LINES = int(LIMITS["BATCH_FILE_MAX_LINES"])
QUOTA = int(LIMITS["BATCH_QUOTA_BYTES"])
MAX_BATCHES = int(LIMITS["MAX_BATCHES_PER_USER"])


def _file_of(size: int, prefix: str) -> bytes:
    """Valid lines adding up to about `size` bytes."""
    lines: list[dict] = []
    while len(jsonl(lines)) < size:
        lines.append(chat_line(f"{prefix}-{len(lines)}", "x" * 100))
    return jsonl(lines)


def test_an_upload_past_the_byte_limit_is_413(
    gateway: GatewayServer, new_key: Callable[[str], str]
) -> None:
    api = client(gateway, new_key("big"))
    fits = _file_of(MAX_BYTES - 400, "fits")
    assert len(fits) <= MAX_BYTES
    assert api.files.create(file=("fits.jsonl", fits), purpose="batch").bytes == len(fits)
    with pytest.raises(openai.APIStatusError) as refused:
        api.files.create(file=("big.jsonl", _file_of(MAX_BYTES + 1, "big")), purpose="batch")
    assert refused.value.status_code == 413
    assert "BATCH_FILE_MAX_BYTES" in refused.value.message


def test_an_upload_past_the_line_limit_is_400(
    gateway: GatewayServer, new_key: Callable[[str], str]
) -> None:
    api = client(gateway, new_key("long"))
    at_limit = jsonl([chat_line(f"l-{n}") for n in range(MAX_LINES)])
    assert len(at_limit) <= MAX_BYTES
    assert api.files.create(file=("ok.jsonl", at_limit), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="BATCH_FILE_MAX_LINES") as refused:
        over = jsonl([chat_line(f"l-{n}") for n in range(MAX_LINES + 1)])
        api.files.create(file=("over.jsonl", over), purpose="batch")
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "too_many_lines"


def test_the_storage_quota_bounds_a_principals_bytes(
    gateway: GatewayServer, new_key: Callable[[str], str]
) -> None:
    api = client(gateway, new_key("hoarder"))
    stored = 0
    with pytest.raises(openai.PermissionDeniedError, match="BATCH_QUOTA_BYTES"):
        for n in range(QUOTA // 10_000 + 2):
            stored += api.files.create(
                file=(f"f{n}.jsonl", _file_of(10_000, f"q{n}")), purpose="batch"
            ).bytes
    assert QUOTA - 11_000 < stored <= QUOTA
    assert sum(f.bytes for f in api.files.list(limit=100).data) == stored
    # Deleting makes room again.
    api.files.delete(api.files.list(limit=1).data[0].id)
    assert api.files.create(file=("again.jsonl", _file_of(5_000, "again")), purpose="batch")


def test_max_batches_per_user_bounds_unfinished_batches(
    gateway: GatewayServer, new_key: Callable[[str], str]
) -> None:
    api = client(gateway, new_key("eager"))
    uploaded = api.files.create(file=("one.jsonl", jsonl([chat_line("x")])), purpose="batch")

    def create() -> openai.types.Batch:
        return api.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )

    made = [create() for _ in range(MAX_BATCHES)]
    with pytest.raises(openai.RateLimitError, match="MAX_BATCHES_PER_USER"):
        create()
    assert len(api.batches.list().data) == MAX_BATCHES
    for batch in made:
        api.batches.cancel(batch.id)
