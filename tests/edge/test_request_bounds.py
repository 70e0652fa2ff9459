"""Items 5, 7 and 13: JSON depth, request header size, a body cut short by the client."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from scripts.processes import wait_until
from tests.edge.conftest import HEADER_LIMIT, JSON_DEPTH, request
from tests.servers import GatewayServer

MB = 1024 * 1024


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


def chat(client: OpenAI, **extra: Any) -> Any:
    return client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], extra_body=extra
    )


def test_json_at_the_depth_bound_is_accepted(client: OpenAI) -> None:
    # The body object is one level, the field's value the other JSON_DEPTH - 1.
    assert chat(client, metadata_tree=nested(JSON_DEPTH - 1)).choices[0].message.content


@pytest.mark.parametrize("levels", [JSON_DEPTH, 300])
def test_json_deeper_than_the_bound_is_refused(client: OpenAI, levels: int) -> None:
    # 255-1024 levels used to parse, then fail to re-encode: 500 with a long traceback.
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, metadata_tree=nested(levels))
    assert caught.value.code == "json_too_deep"


def test_json_nested_1000_deep_is_refused(gateway: GatewayServer) -> None:
    # Deeper than the openai client can encode; orjson parses up to 1024 levels.
    body = b'{"model": "fake-model", "messages": [], "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    status, answer, _ = request(
        gateway,
        "/resource_server/alpha/vllm/v1/chat/completions",
        {"Authorization": f"Bearer {gateway.api_key}", "Content-Type": "application/json"},
        method="POST",
        body=body,
    )
    assert status == 400
    assert json.loads(answer)["error"]["code"] == "json_too_deep"


def test_brackets_inside_strings_do_not_count(client: OpenAI) -> None:
    text = '[{"\\' * 500 + "]" * 50
    assert chat(client, note=text, more=[text, {"a": text}]).choices[0].message.content


def raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_header_over_the_limit_answers_431(gateway: GatewayServer) -> None:
    big = b"x" * (HEADER_LIMIT + 1024)
    answer = raw_request(
        gateway.port,
        b"GET /resource_server/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + big + b"\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"code":"request_headers_too_large"' in answer


def test_header_under_the_limit_is_served(gateway: GatewayServer) -> None:
    fits = b"x" * (HEADER_LIMIT - 1024)
    answer = raw_request(
        gateway.port,
        b"GET /resource_server/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"X-Fits: " + fits + b"\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_body_that_ends_in_one_large_read_is_not_taken_for_headers(
    gateway: GatewayServer,
) -> None:
    # The read that completes a request (here: line, headers and a body four times the header
    # limit, sent at once) belongs to that request, not to the headers of the next one.
    body = json.dumps(
        {"model": "fake-model", "messages": [{"role": "user", "content": "y" * 4 * HEADER_LIMIT}]}
    ).encode()
    answer = raw_request(
        gateway.port,
        b"POST /resource_server/alpha/vllm/v1/chat/completions HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + gateway.api_key.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
    )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def send_huge_header(port: int, size: int, outcomes: list[bytes]) -> None:
    """Up to `size` bytes of one header; the server may answer and close long before."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(b"GET /resource_server/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            block = b"x" * MB
            for _ in range(size // MB):
                sock.sendall(block)
            sock.sendall(b"\r\n\r\n")
            outcomes.append(sock.recv(65536))
        except OSError:
            outcomes.append(b"closed")


def test_fifty_megabyte_headers_keep_the_worker_small(gateway: GatewayServer) -> None:
    assert gateway.process is not None
    pid = gateway.process.pid  # one worker: uvicorn serves in this very process
    before = memory_kb(pid, "VmRSS")
    outcomes: list[bytes] = []
    senders = [
        threading.Thread(target=send_huge_header, args=(gateway.port, 50 * MB, outcomes))
        for _ in range(4)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=120)
    assert len(outcomes) == 4
    # Peak memory of the worker: it grew by ~250 MB before the bound (four 50 MB headers).
    grown_mb = (memory_kb(pid, "VmHWM") - before) / 1024
    assert grown_mb < 40
    # Refused (431) or cut off by the server, never answered as a request.
    assert all(o == b"closed" or o.startswith(b"HTTP/1.1 431 ") or o == b"" for o in outcomes)


def test_client_that_hangs_up_mid_body_leaves_no_traceback(gateway: GatewayServer) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /resource_server/alpha/vllm/v1/chat/completions HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + gateway.api_key.encode() + b"\r\n"
            b"Content-Length: 100000\r\n\r\n" + b'{"model": "fake-model", "messages": ['
        )
    assert wait_until(lambda: "client went away" in gateway.log_text(), timeout=10)
    assert "Traceback" not in gateway.log_text()
