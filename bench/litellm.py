"""LiteLLM's proxy as a comparison target (`--compare litellm`), in a virtualenv of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.processes import ROOT, start
from scripts.processes import wait_for_http

VENV = ROOT / "bench" / ".venv-litellm"
# The newest release whose `proxy` extra installs from PyPI alone (later ones need a package
# that is not published there).
REQUIREMENT = "litellm[proxy]==1.79.0"


def ensure_installed() -> Path:
    executable = VENV / "bin" / "litellm"
    if executable.exists():
        return executable
    print(f"installing {REQUIREMENT} into {VENV} (first time only) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, REQUIREMENT], check=True)
    return executable


@contextmanager
def litellm_proxy(
    workdir: Path, backend_port: int, model: str, port: int, core: int
) -> Iterator[int]:
    """Yield the pid of a one-worker LiteLLM proxy on `port` serving `model` from the backend."""
    executable = ensure_installed()
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {model}\n"
        "    litellm_params:\n"
        f"      model: openai/{model}\n"
        f"      api_base: http://127.0.0.1:{backend_port}/v1\n"
        "      api_key: unused\n"
    )
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    process = start(
        "litellm",
        [
            str(executable),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        env,
        workdir / "litellm.log",
        core,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=120)
        yield process.pid
    finally:
        process.stop()
