"""`make demo`'s script, run as a newcomer would: it answers, prints how to call it, and stops."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from openai import OpenAI

from scripts import demo
from tests.model_server import MODEL_NAME, needs_model_server
from tests.servers import ROOT, free_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.model, needs_model_server]

READY = "Press Ctrl-C to stop the demo (and what it started)."


@contextlib.contextmanager
def running_demo(data_dir: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """The demo script as `make demo` runs it; SIGTERM (it stops its children) if still up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update({"GATEWAY_DATA_DIR": str(data_dir), "DEMO_PORT": str(port)})
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.communicate(timeout=30)


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 180) -> str:
    """What the demo printed up to `marker`; read from the pipe's descriptor, since a buffered
    readline would hold lines that select() no longer reports as waiting."""
    assert process.stdout is not None
    descriptor = process.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or process.poll() is not None:
            raise AssertionError(f"the demo did not print {marker!r}; it printed:\n{seen!r}")
        ready, _, _ = select.select([descriptor], [], [], min(left, 1.0))
        if ready:
            seen += os.read(descriptor, 65536)
    return seen.decode()


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    return rest


def test_demo_serves_smollm2_and_reuses_what_it_made(tmp_path: Path) -> None:
    port = free_port()
    model_url = demo.demo_target().api_url
    model_was_running = demo.model_server.serves_model(model_url)

    with running_demo(tmp_path, port) as process:
        printed = read_until(process, READY)
        key = re.search(r"API key\s+(igw_\S+)", printed)
        assert key is not None, printed
        base_url = f"http://127.0.0.1:{port}/resource_server/local/llama-cpp/v1"
        assert f'OpenAI(base_url="{base_url}", api_key="{key[1]}")' in printed
        assert f"curl {base_url}/chat/completions" in printed
        assert re.search(r"It answered: \S", printed)
        key_file = tmp_path / "demo_api_key"
        assert key_file.read_text().strip() == key[1]
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

        client = OpenAI(base_url=base_url, api_key=key[1], max_retries=0, timeout=120)
        answer = client.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": "Hi!"}], max_tokens=8
        )
        assert answer.choices[0].message.content

        # The demo's Globus Compute endpoint, run by the local executor, serves the same model.
        compute_url = f"http://127.0.0.1:{port}/resource_server/local-compute/llama-cpp/v1"
        assert f'base_url="{compute_url}"' in printed
        compute = OpenAI(base_url=compute_url, api_key=key[1], max_retries=0, timeout=120)
        via_compute = compute.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": "Hi!"}], max_tokens=8
        )
        assert via_compute.choices[0].message.content

        # The demo's batch worker runs a batch made with the openai client.
        federated = OpenAI(
            base_url=f"http://127.0.0.1:{port}/resource_server/v1", api_key=key[1], timeout=120
        )
        body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "Hi"}]}
        line = {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions", "body": body}
        upload = federated.files.create(file=("q.jsonl", orjson.dumps(line)), purpose="batch")
        batch = federated.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        wait_until(lambda: federated.batches.retrieve(batch.id).status == "completed", 120)
        output_id = federated.batches.retrieve(batch.id).output_file_id
        assert output_id and '"custom_id":"q1"' in federated.files.content(output_id).text

        tail = stop(process)
    stopped = (
        "Stopped: batch-worker, gateway."
        if model_was_running
        else "Stopped: batch-worker, gateway, model-server."
    )
    assert stopped in tail

    # Again: the same database and key, nothing new to install.
    with running_demo(tmp_path, port) as again:
        printed = read_until(again, READY)
        stop(again)
    assert f"API key       {key[1]}" in printed
    assert "Installing" not in printed
