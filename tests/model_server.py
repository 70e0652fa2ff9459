"""The real SmolLM2 model server (llama-cpp-python from `.venv-model`) as a pytest fixture."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts import model_server
from tests.servers import free_port, wait_for_http

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
        self.port = self.port or free_port()
        # Two threads: CI has two cores, and the gateway and the test share them.
        command = model_server.command(self.port, threads=2)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                command, env=model_server.environment(), stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_http(f"{self.url}/v1/models", timeout=120, process=self.process)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """The running SmolLM2 server; tests that use it need the `needs_model_server` mark."""
    server = ModelServer(tmp_path_factory.mktemp("smollm2")).start()
    try:
        yield server
    finally:
        server.stop()
