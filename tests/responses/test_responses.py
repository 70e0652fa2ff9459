"""Responses through a real gateway with the official openai client: every mode, text and a
forced function call, created and streamed, cluster-scoped and federated, and streams cut."""

from __future__ import annotations

from pathlib import Path

import openai
import orjson
import pytest

from resource_server_async.inference import responses_api
from tests.anthropic.fake_messages_backend import MessagesBackend
from tests.responses.conftest import ClientFactory
from tests.servers import GatewayServer

pytestmark = pytest.mark.e2e

DATA = Path(__file__).parent / "data"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}
FORCED = {"type": "function", "name": "get_weather"}
TRANSLATED = ["chat-model", "translate-model"]


@pytest.mark.parametrize("model", [*TRANSLATED, "native-model"])
def test_create_text(client: openai.OpenAI, model: str) -> None:
    response = client.responses.create(
        model=model, input="hello there", instructions="Be brief.", max_output_tokens=50
    )

    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == model
    assert response.output_text == "Echo: hello there"
    assert response.usage is not None
    assert response.usage.output_tokens == 3
    assert response.usage.total_tokens == response.usage.input_tokens + 3


def test_translated_create_goes_to_chat_completions(
    client: openai.OpenAI, native_backend: MessagesBackend
) -> None:
    client.responses.create(
        model="translate-model",
        input=[
            {"role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        ],
        instructions="Be brief.",
        max_output_tokens=20,
        temperature=0.5,
        reasoning={"effort": "low"},
        text={"format": {"type": "json_object"}},
        store=False,
        prompt_cache_key="k1",
    )

    sent = native_backend.requests_to("/v1/chat/completions")[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief.\n\nRules."},
        {"role": "user", "content": "hi"},
    ]
    assert sent["max_tokens"] == 20 and sent["temperature"] == 0.5
    assert sent["reasoning_effort"] == "low"
    assert sent["response_format"] == {"type": "json_object"}
    for dropped in ("store", "prompt_cache_key", "input", "instructions", "text"):
        assert dropped not in sent


def test_incomplete_at_max_output_tokens(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="chat-model", input="one two three four five", max_output_tokens=2
    )

    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "Echo: one"


@pytest.mark.parametrize("model", TRANSLATED)
def test_create_forced_function_call_then_its_output(client: openai.OpenAI, model: str) -> None:
    first = client.responses.create(
        model=model, input="weather in Paris", tools=[WEATHER], tool_choice=FORCED
    )

    (call,) = first.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.call_id and call.id and call.id.startswith("fc_")
    assert orjson.loads(call.arguments) == {"query": "weather in Paris"}

    second = client.responses.create(
        model=model,
        input=[
            {"role": "user", "content": "weather in Paris"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert second.output_text == "Tool said: sunny"


@pytest.mark.parametrize("model", [*TRANSLATED, "native-model"])
def test_stream_text_assembles_the_final_response(client: openai.OpenAI, model: str) -> None:
    with client.responses.stream(model=model, input="a b c") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()

    assert final.output_text == "Echo: a b c"
    assert final.status == "completed"
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds


def test_stream_sequence_numbers_count_up(gateway: GatewayServer) -> None:
    events = gateway.sse_events(
        "/resource_server/resp/vllm/v1/responses",
        {"model": "chat-model", "input": "x y", "stream": True},
    )

    datas = [orjson.loads(event.split(b"data: ", 1)[1]) for event in events]
    assert [d["sequence_number"] for d in datas] == list(range(len(datas)))
    for event, data in zip(events, datas, strict=True):
        assert event.startswith(b"event: " + data["type"].encode() + b"\n")
    assert datas[-1]["response"]["usage"]["output_tokens"] == 3


@pytest.mark.parametrize("model", TRANSLATED)
def test_stream_forced_function_call(client: openai.OpenAI, model: str) -> None:
    with client.responses.stream(
        model=model, input="weather in Rome", tools=[WEATHER], tool_choice=FORCED
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()

    (call,) = final.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert orjson.loads(call.arguments) == {"query": "weather in Rome"}
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds


def test_auto_falls_back_once_and_remembers(
    client: openai.OpenAI, chat_backend: MessagesBackend, gateway: GatewayServer
) -> None:
    before = len(chat_backend.requests_to("/v1/responses"))
    for _ in range(3):
        client.responses.create(model="chat-model", input="again")

    # At most one 404 per process (an earlier test may have found it already).
    assert len(chat_backend.requests_to("/v1/responses")) - before <= 1
    assert responses_api.chat_only.seconds > 0


def test_native_mode_answers_the_servers_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="forced-native-model", input="x")


def test_hosted_tools_dropped_by_default(
    client: openai.OpenAI, chat_backend: MessagesBackend
) -> None:
    response = client.responses.create(
        model="chat-model", input="search", tools=[{"type": "web_search"}]
    )

    assert response.output_text == "Echo: search"
    assert "tools" not in chat_backend.requests_to("/v1/chat/completions")[-1].json


def test_hosted_tools_refused_when_the_endpoint_says_so(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="strict-model", input="search", tools=[WEATHER, {"type": "web_search"}]
        )

    assert caught.value.code == "hosted_tool_not_supported"
    assert "web_search" in caught.value.message and "tools.1" in caught.value.message


def test_untranslatable_item_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="translate-model", input=[{"type": "item_reference", "id": "msg_1"}]
        )

    assert caught.value.code == "untranslatable_request"


def test_bad_input_item_is_refused_before_any_server(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="chat-model", input=[{"role": "robot", "content": "x"}])

    assert caught.value.param == "input[0].role"


def test_federated(make_client: ClientFactory) -> None:
    client = make_client(cluster=None)
    response = client.responses.create(model="chat-model", input="from anywhere")
    with client.responses.stream(model="chat-model", input="streamed") as stream:
        final = stream.get_final_response()

    assert response.output_text == "Echo: from anywhere"
    assert final.output_text == "Echo: streamed"


def test_cluster_without_responses_refuses(make_client: ClientFactory) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        make_client("chatonly").responses.create(model="only-chat-model", input="x")

    assert caught.value.code == "operation_not_offered"


@pytest.mark.parametrize("model", TRANSLATED)
def test_translated_stream_cut_midway_raises(client: openai.OpenAI, model: str) -> None:
    with (
        pytest.raises(openai.APIError) as caught,
        client.responses.stream(
            model=model,
            input="x",
            extra_body={"fake": {"chunks": 20, "stop_after": 4}},
        ) as stream,
    ):
        for _ in stream:
            pass

    assert "ended before" in caught.value.message or "stream" in caught.value.message


@pytest.mark.parametrize(
    "fault", [{"chunks": 20, "stop_after": 4}, {"no_completed": True}], ids=["cut", "no-end"]
)
def test_native_stream_without_its_end_raises(client: openai.OpenAI, fault: dict) -> None:
    with pytest.raises(openai.APIError):
        stream = client.responses.create(
            model="native-model", input="x", stream=True, extra_body={"fake": fault}
        )
        for _ in stream:
            pass


@pytest.mark.parametrize("turn", ["codex-responses-1", "codex-responses-2-after-tool-call"])
def test_codex_cli_request_runs(
    gateway: GatewayServer, chat_backend: MessagesBackend, turn: str
) -> None:
    # The body as Codex CLI 0.171 sent it (long instructions trimmed), sent as it came.
    body = orjson.loads((DATA / f"{turn}.json").read_bytes())["body"]
    body["model"] = "chat-model"
    events = gateway.sse_events("/resource_server/resp/vllm/v1/responses", body)
    last = orjson.loads(events[-1].split(b"data: ", 1)[1])

    assert last["type"] == "response.completed"
    sent = chat_backend.requests_to("/v1/chat/completions")[-1].json
    assert sent["messages"][0]["role"] == "system"  # the developer items, merged
    assert [m["role"] for m in sent["messages"]].count("system") == 1
    names = [tool["function"]["name"] for tool in sent["tools"]]
    assert "exec_command" in names
    assert "multi_agent_v1__close_agent" in names  # a namespace's function, flattened
    assert len(names) == len(set(names)) == 7 + 5  # web_search dropped
    output = last["response"]["output"]
    if turn.endswith("tool-call"):
        assert [m["role"] for m in sent["messages"][-2:]] == ["assistant", "tool"]
        assert output[0]["content"][0]["text"].startswith("Tool said:")
    else:
        # The fake calls the first tool it is given, under its own name.
        assert output[0]["type"] == "function_call" and output[0]["name"] == "exec_command"
