"""Usage counts that are not integers in an upstream chat answer or stream: a clear 502 (the
model server's fault), never a 500, in the Messages translation (issue 9, item 17)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from resource_server_async.errors import GatewayError
from resource_server_async.translation.messages_response import chat_to_message
from resource_server_async.translation.messages_stream import MessagesStream
from tests.anthropic.test_messages_errors import anthropic_error, failure, without_info
from tests.anthropic.test_stream_translation import delta, events, sse

HELLO: list[Any] = [{"role": "user", "content": "hello there"}]

# (usage sent upstream, how the 502 names it)
BAD_USAGE = [
    ({"prompt_tokens": "12"}, "usage.prompt_tokens is a string"),
    ({"prompt_tokens": "many"}, "usage.prompt_tokens is a string"),
    ({"completion_tokens": 7.5}, "usage.completion_tokens is a number"),
    ({"completion_tokens": 7.0}, "usage.completion_tokens is a number"),
    ({"completion_tokens": True}, "usage.completion_tokens is a boolean"),
    ({"prompt_tokens": {"text": 3}}, "usage.prompt_tokens is an object"),
    ({"prompt_tokens": [3]}, "usage.prompt_tokens is an array"),
    ({"completion_tokens": -1}, "usage.completion_tokens is negative"),
]


def malformed_message(what: str) -> str:
    return f"The model server's answer is malformed: {what}, not a token count."


def chat_answer(usage: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": "Hi"}
    return {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}


# --- the translation itself -----------------------------------------------------------------


@pytest.mark.parametrize(("fields", "what"), BAD_USAGE)
def test_answer_with_a_bad_count_is_502(fields: dict[str, Any], what: str) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 1} | fields

    with pytest.raises(GatewayError) as caught:
        chat_to_message(chat_answer(usage), "m", [])

    assert (caught.value.status, caught.value.code) == (502, "upstream_malformed_answer")
    assert caught.value.message == malformed_message(what)


def test_answer_whose_usage_is_not_an_object_is_502() -> None:
    with pytest.raises(GatewayError) as caught:
        chat_to_message(chat_answer("3 tokens"), "m", [])

    assert caught.value.status == 502
    assert caught.value.message == (
        "The model server's answer is malformed: its usage is a string, not an object."
    )


def test_null_counts_are_unknown_not_errors() -> None:
    # vLLM's usage model allows a null completion_tokens.
    usage = {"prompt_tokens": None, "completion_tokens": None}
    assert chat_to_message(chat_answer(usage), "m", [])["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
    }
    assert chat_to_message(chat_answer(None), "m", [])["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
    }


@pytest.mark.parametrize(("fields", "what"), BAD_USAGE)
def test_stream_with_a_bad_count_ends_with_a_502_error_event(
    fields: dict[str, Any], what: str
) -> None:
    stream = MessagesStream("m")
    upstream = sse(
        delta(content="Hi"),
        delta("stop"),
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1} | fields},
        "[DONE]",
    )

    got = events(stream.start() + stream.feed(upstream) + stream.finish())

    assert got[-1] == ("error", anthropic_error("api_error", malformed_message(what)))
    assert "message_stop" not in [name for name, _ in got]


def test_stream_with_null_usage_counts_estimates() -> None:
    stream = MessagesStream("m")
    upstream = sse(
        delta(content="Hi"),
        delta("stop", usage=None),
        {"choices": [], "usage": {"prompt_tokens": None, "completion_tokens": None}},
        "[DONE]",
    )

    got = events(stream.start() + stream.feed(upstream) + stream.finish())

    assert got[-2][1]["usage"] == {"output_tokens": 1}
    assert got[-1][0] == "message_stop"


# --- through the gateway, as the anthropic client sees it -------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(("fields", "what"), BAD_USAGE[:3] + BAD_USAGE[5:6])
def test_translated_answer_with_a_bad_count_is_502(
    client: anthropic.Anthropic, fields: dict[str, Any], what: str
) -> None:
    status, body = failure(
        lambda: client.messages.create(
            model="chat-model", max_tokens=5, messages=HELLO, extra_body={"fake": {"usage": fields}}
        )
    )

    assert status == 502
    assert without_info(body) == anthropic_error("api_error", malformed_message(what))


@pytest.mark.e2e
@pytest.mark.parametrize(("fields", "what"), BAD_USAGE[:3] + BAD_USAGE[5:6])
def test_translated_stream_with_a_bad_count_ends_with_a_502_event(
    client: anthropic.Anthropic, fields: dict[str, Any], what: str
) -> None:
    texts: list[str] = []

    def consume() -> None:
        with client.messages.stream(
            model="chat-model", max_tokens=5, messages=HELLO, extra_body={"fake": {"usage": fields}}
        ) as stream:
            texts.extend(stream.text_stream)

    _, body = failure(consume)

    assert without_info(body) == anthropic_error("api_error", malformed_message(what))
    assert "".join(texts) == "Echo: hello there"  # the text came through before the usage


@pytest.mark.e2e
def test_translated_answer_with_good_counts_still_reports_them(client: anthropic.Anthropic) -> None:
    answer = client.messages.create(
        model="chat-model",
        max_tokens=5,
        messages=HELLO,
        extra_body={"fake": {"usage": {"prompt_tokens": 40, "completion_tokens": 3}}},
    )

    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (40, 3)
