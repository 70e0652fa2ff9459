"""The real SmolLM2 model server (llama-cpp-python from `.venv-model`) as a pytest fixture."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts import model_server, processes

MODEL_NAME = model_server.MODEL_NAME

needs_model_server = pytest.mark.skipif(
    not model_server.is_installed(),
    reason="llama-cpp-python is not installed in .venv-model (make model-venv installs it)",
)


@dataclass
class ModelServer:
    """`python -m llama_cpp.server` serving SmolLM2 on a free loopback port."""

    tmp_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.tmp_path / "model-server.log"

    def start(self) -> ModelServer:
        self.port = self.port or processes.free_port()
        # Two threads: CI has two cores, and the gateway and the test share them.
        command = model_server.command(self.port, threads=2)
        self.process = processes.start(command, self.log, env=model_server.environment())
        try:
            processes.wait_for_http(f"{self.url}/v1/models", timeout=120, process=self.process)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process)


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """The running SmolLM2 server; tests that use it need the `needs_model_server` mark."""
    server = ModelServer(tmp_path_factory.mktemp("smollm2")).start()
    try:
        yield server
    finally:
        server.stop()
