"""How task outcomes become answers and errors: remote tracebacks, error answers in results,
side-channel text back into SSE, endpoint status documents."""

from __future__ import annotations

import orjson
import pytest

from resource_server_async.compute.base import EndpointState, remote_reason
from resource_server_async.compute.globus import state_from_status
from resource_server_async.endpoints.compute_outcomes import inference_failure, reply_from_result
from resource_server_async.endpoints.compute_stream import SSEAssembler
from resource_server_async.errors import GatewayError
from tests.compute.conftest import make_endpoint

ENDPOINT = make_endpoint(
    "9d0c3f1e-2a4b-4c6d-8e0f-1a2b3c4d5e6f", "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9", 8000
)

CHAINED = """Traceback (most recent call last):
  File "/worker/function.py", line 10, in handle
    response.raise_for_status()
requests.exceptions.HTTPError: 400 Client Error

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/worker/function.py", line 14, in inference_function
    raise Exception(error_msg)
Exception: API request failed with status code: 400
Response text: {"object":"error","message":"max_tokens is too large","code":400}
Response headers: {'content-type': 'application/json'}
"""


def test_remote_reason_keeps_the_last_exception_without_frames() -> None:
    assert remote_reason(CHAINED) == (
        "Exception: API request failed with status code: 400\n"
        'Response text: {"object":"error","message":"max_tokens is too large","code":400}\n'
        "Response headers: {'content-type': 'application/json'}"
    )
    assert remote_reason("ValueError: plain") == "ValueError: plain"
    assert len(remote_reason("x" * 10_000)) == 4000


def test_inference_failure_finds_status_and_body() -> None:
    assert inference_failure(remote_reason(CHAINED)) == (
        400,
        b'{"object":"error","message":"max_tokens is too large","code":400}',
    )
    assert inference_failure("RuntimeError: something else") is None


def test_error_answer_returned_as_the_result_keeps_status_and_message() -> None:
    vllm_error = {"object": "error", "message": "bad prompt", "type": "Bad", "code": 400}

    with pytest.raises(GatewayError) as caught:
        reply_from_result(orjson.dumps(vllm_error).decode(), ENDPOINT, "task-9")

    assert (caught.value.status, caught.value.message) == (400, "bad prompt")
    assert caught.value.info == {
        "cluster": "hpc",
        "model": "fake-model",
        "upstream_status": 400,
        "task_id": "task-9",
    }


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (
            "<html>oops</html>",
            "The function serving model 'fake-model' on cluster 'hpc' returned text that is "
            "not JSON: '<html>oops</html>'",
        ),
        (
            [1, 2],
            "The function serving model 'fake-model' on cluster 'hpc' returned list, "
            "not a JSON object.",
        ),
    ],
)
def test_results_that_are_not_json_objects_are_502(result: object, message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        reply_from_result(result, ENDPOINT, None)

    assert (caught.value.status, caught.value.code, caught.value.message) == (
        502,
        "compute_bad_result",
        message,
    )


def test_result_as_object_or_text_loses_only_the_timings() -> None:
    answer = {"id": "x", "choices": [], "response_time": 1.5, "throughput_tokens_per_second": 3}

    for result in (answer, orjson.dumps(answer).decode(), orjson.dumps(answer)):
        reply = reply_from_result(result, ENDPOINT, None)
        assert orjson.loads(reply.body) == {"id": "x", "choices": []}


def test_sse_assembler_rebuilds_events_across_posts() -> None:
    assembler = SSEAssembler()

    first = assembler.feed('data: {"a": 1}\ndata: {"b": 2}\nevent: message_start')
    second = assembler.feed('data: {"c": 3}\n: keep-alive\ndata: [DONE]\n{"bare": true}')

    assert first == b'data: {"a": 1}\n\ndata: {"b": 2}\n\n'
    assert second == b'event: message_start\ndata: {"c": 3}\n\ndata: {"bare": true}\n\n'


@pytest.mark.parametrize(
    "posts",
    [
        ['data: {"a": 1}\ndata: {"b": 2}\ndata: {"c": 3}'],  # a batch of data lines
        ['data: {"a": 1}\ndata: {"b": "[DONE] in content"}'],
        ['data: {"a": 1}\n\ndata: {"b": 2}', 'data: {"c": 3}\n'],  # blank lines
        ['data: {"a": 1}\r\ndata: {"b": 2}\r'],
        ["event: delta", 'data: {"a": 1}\ndata: {"b": 2}'],  # a field waiting
        ['data: {"a": 1}\nid: 7\ndata: {"b": 2}', 'data: {"c": 3}\ndata: [DONE]'],
        ['data:{"tight": 1}\ndata: x', 'data: {"a": 1}\n{"bare": 1}'],
    ],
)
def test_sse_assembler_batches_give_what_the_line_by_line_pass_gives(posts: list[str]) -> None:
    fast, line_by_line = SSEAssembler(), SSEAssembler()
    line_by_line._only_data_lines = lambda text: False  # type: ignore[method-assign]

    assert [fast.feed(post) for post in posts] == [line_by_line.feed(post) for post in posts]


def test_sse_assembler_passes_single_data_lines_and_holds_fields_for_them() -> None:
    assembler = SSEAssembler()

    assert assembler.feed('data: {"a": 1}') == b'data: {"a": 1}\n\n'
    assert assembler.feed("data: [DONE]") == b""
    assert assembler.feed('data: {"b": 2}\r') == b'data: {"b": 2}\n\n'
    # A field posted alone waits for the next data line, which then carries it.
    assert assembler.feed("event: delta") == b""
    assert assembler.feed('data: {"c": 3}') == b'event: delta\ndata: {"c": 3}\n\n'


@pytest.mark.parametrize(
    ("document", "state"),
    [
        (
            {"status": "online", "details": {"managers": 1, "total_workers": 4}},
            EndpointState("online", 4, "4 workers"),
        ),
        (
            {"status": "online", "details": {"managers": 0, "total_workers": 4}},
            EndpointState("online", 0, "0 workers"),
        ),
        (
            {"status": "online", "details": {}},
            EndpointState("online", None, "workers not reported"),
        ),
        ({"status": "offline"}, EndpointState("offline", 0, "offline")),
        ({"status": "lost"}, EndpointState("unknown", None, "status lost")),
        ("not a document", EndpointState("unknown", None, "unreadable status")),
    ],
)
def test_endpoint_state_from_the_status_document(document: object, state: EndpointState) -> None:
    assert state_from_status(document) == state
