"""`role: "system"` turns inside `messages` (Claude Code 2.1's mid-conversation-system beta),
through the real gateway with the anthropic client: passed through, or translated in place."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from tests.anthropic.fake_messages_backend import MessagesBackend

pytestmark = pytest.mark.e2e

BETA = {"anthropic-beta": "mid-conversation-system-2025-10-15"}
REMINDER = "The user's files changed since the last turn."
CONVERSATION: list[Any] = [
    {"role": "user", "content": "list the files"},
    {"role": "assistant", "content": "There are two files"},
    {"role": "system", "content": [{"type": "text", "text": REMINDER}]},
    {"role": "user", "content": "and now?"},
]


def test_a_system_turn_goes_unchanged_to_a_server_that_speaks_messages(
    client: anthropic.Anthropic, native_backend: MessagesBackend
) -> None:
    message = client.messages.create(
        model="native-model",
        max_tokens=20,
        system="You are terse.",
        messages=CONVERSATION,
        extra_headers=BETA,
    )

    assert message.content[0].text == "Native: and now?"  # type: ignore[union-attr]
    sent = native_backend.requests_to("/v1/messages")[-1].json
    assert sent["messages"] == CONVERSATION
    assert sent["system"] == "You are terse."


@pytest.mark.parametrize("stream", [False, True])
def test_a_system_turn_is_translated_in_place(
    client: anthropic.Anthropic, native_backend: MessagesBackend, stream: bool
) -> None:
    request: dict[str, Any] = {
        "model": "translate-model",
        "max_tokens": 20,
        "system": "You are terse.",
        "messages": CONVERSATION,
        "extra_headers": BETA,
    }
    if stream:
        with client.messages.stream(**request) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**request)

    assert message.content[0].text == "Echo: and now?"  # type: ignore[union-attr]
    sent = native_backend.requests_to("/v1/chat/completions")[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "list the files"},
        {"role": "assistant", "content": "There are two files"},
        {"role": "system", "content": REMINDER},
        {"role": "user", "content": "and now?"},
    ]


def test_a_system_turn_with_other_blocks_is_refused(client: anthropic.Anthropic) -> None:
    turns = [{"role": "system", "content": [{"type": "image", "source": {}}]}]
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="chat-model", max_tokens=5, messages=turns)  # type: ignore[misc]

    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages.0.content.0: system blocks must be objects of type 'text'",
        },
    }
