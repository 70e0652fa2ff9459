"""OpenAI chat SSE -> Anthropic stream events, fed the way bytes arrive from a socket."""

from __future__ import annotations

from typing import Any

import orjson

from resource_server_async.errors import GatewayError
from resource_server_async.translation.messages_stream import MessagesStream
from resource_server_async.translation.sse import SSEDecoder


def sse(*chunks: dict[str, Any] | str) -> bytes:
    out = b""
    for chunk in chunks:
        data = chunk.encode() if isinstance(chunk, str) else orjson.dumps(chunk)
        out += b"data: " + data + b"\n\n"
    return out


def delta(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": fields, "finish_reason": finish}],
    }


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of an Anthropic stream; checks that name == data.type."""
    parsed = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        name_line, data_line = block.split(b"\n")
        name = name_line.removeprefix(b"event: ").decode()
        data = orjson.loads(data_line.removeprefix(b"data: "))
        assert data["type"] == name
        parsed.append((name, data))
    return parsed


def run(upstream: bytes, piece: int = 7, **kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
    """Feed `upstream` in `piece`-byte reads, as a slow socket would deliver it."""
    stream = MessagesStream("smollm2", **kwargs)
    out = stream.start()
    for offset in range(0, len(upstream), piece):
        out += stream.feed(upstream[offset : offset + piece])
    return events(out + stream.finish())


def test_text_stream() -> None:
    upstream = sse(
        delta(role="assistant", content=""),
        delta(content="Hel"),
        delta(content="lo"),
        delta("stop"),
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
        "[DONE]",
    )
    got = run(upstream)
    assert [name for name, _ in got] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = got[0][1]["message"]
    assert start["id"].startswith("msg_")
    assert (start["role"], start["model"], start["content"]) == ("assistant", "smollm2", [])
    assert got[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert [data["delta"] for _, data in got[3:5]] == [
        {"type": "text_delta", "text": "Hel"},
        {"type": "text_delta", "text": "lo"},
    ]
    assert got[6][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 2, "input_tokens": 9},
    }


def test_tool_call_stream_after_text() -> None:
    upstream = sse(
        delta(content="Checking."),
        delta(
            tool_calls=[
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        ),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city": '}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}]),
        delta(
            tool_calls=[
                {"index": 1, "id": "call_2", "function": {"name": "now", "arguments": "{}"}}
            ]
        ),
        delta("tool_calls"),
        "[DONE]",
    )
    got = run(upstream, piece=5)
    names = [name for name, _ in got]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert got[5][1] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
    }
    partial = "".join(data["delta"]["partial_json"] for _, data in got[6:8])
    assert orjson.loads(partial) == {"city": "Paris"}
    assert got[9][1]["content_block"]["name"] == "now"
    assert got[9][1]["index"] == 2
    assert got[10][1]["delta"] == {"type": "input_json_delta", "partial_json": "{}"}
    # No usage upstream: one token per content chunk is the estimate.
    assert got[12][1]["delta"]["stop_reason"] == "tool_use"
    assert got[12][1]["usage"] == {"output_tokens": 4}


def test_length_and_stop_sequence() -> None:
    got = run(sse(delta(content="a"), delta("length"), "[DONE]"))
    assert got[-2][1]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    upstream = sse(
        delta(content="1 2"),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "3"}]},
        "[DONE]",
    )
    got = run(upstream, stop_sequences=["3"])
    assert got[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "3"}


def test_empty_answer_has_no_blocks() -> None:
    got = run(sse(delta("stop"), "[DONE]"))
    assert [name for name, _ in got] == ["message_start", "ping", "message_delta", "message_stop"]


def test_crlf_and_unterminated_last_event() -> None:
    upstream = (
        b": keep-alive\r\n\r\n"
        + b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\r\n\r\n'
        + b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
    )
    got = run(upstream, piece=3)
    assert [name for name, _ in got][-4:] == [
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_upstream_error_event_ends_the_stream() -> None:
    upstream = sse(delta(content="a"), {"error": {"message": "CUDA out of memory", "code": 500}})
    got = run(upstream + sse(delta(content="never")))
    assert [name for name, _ in got] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    assert got[-1][1] == {
        "type": "error",
        "error": {
            "type": "api_error",
            "message": "The model server failed mid-stream: CUDA out of memory",
        },
    }


def test_stream_that_breaks_off_ends_with_an_error() -> None:
    got = run(sse(delta(content="a"), delta(content="b")))
    assert got[-1] == (
        "error",
        {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": "The model server's stream ended before the answer was complete.",
            },
        },
    )


def test_malformed_event_and_explicit_failure() -> None:
    got = run(b"data: {not json\n\n")
    assert got[-1][1]["error"]["message"] == "The model server sent a malformed event."
    stream = MessagesStream("m")
    stream.start()
    first = stream.fail(GatewayError(504, "upstream_timeout", "The model server timed out."))
    assert events(first) == [
        (
            "error",
            {
                "type": "error",
                "error": {"type": "api_error", "message": "The model server timed out."},
            },
        )
    ]
    assert stream.fail(GatewayError(502, "x", "again")) == b""
    assert stream.feed(sse(delta(content="late"))) == b""
    assert stream.finish() == b""


def test_sse_decoder_joins_multiline_data() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: x\ndata: a\ndata: b\n\nda") == [b"a\nb"]
    assert decoder.feed(b"ta: c\n\n") == [b"c"]
    assert decoder.flush() == []
