"""A translated stream whose server said `[DONE]` without a finish reason is not a whole answer."""

from __future__ import annotations

import anthropic
import pytest

from tests.anthropic.test_messages_errors import HELLO, failure

pytestmark = pytest.mark.e2e


def test_done_without_finish_reason_ends_with_an_error_event(client: anthropic.Anthropic) -> None:
    def consume() -> None:
        with client.messages.stream(
            model="chat-model",
            max_tokens=50,
            messages=HELLO,
            extra_body={"fake": {"no_finish": True}},
        ) as stream:
            for _ in stream:
                pass

    _, body = failure(consume)
    assert body["error"]["type"] == "api_error"
    assert "no finish reason" in body["error"]["message"]
