"""The batch function: runs on the cluster, sends an input file's lines to the node's model server.

Registered with Globus Compute (self-contained: standard library and `requests` only). The
gateway's cluster-scoped batch route submits it with the reference gateway's payload:

    {"model_params": {"input_file", "model", "output_folder_path"?, "api_port"?},
     "batch_id", "username"}

It writes `<output>/<stem>_<model>_<batch_id>/<stem>.results.jsonl` (one OpenAI batch output line
per input line) and `<stem>.progress.json` (lines done so far), a chunk at a time, so that a task
started again after an interruption resumes after the last chunk written. With vLLM installed
and no model server URL configured, vLLM's own `run_batch` does the work instead. Returns the
summary as JSON text: `{"results_file", "progress_file", "metrics": {...}}`.

Settings (environment of the endpoint): `INFERENCE_API_BASE_URL` (default
`https://127.0.0.1:{api_port}`), `INFERENCE_TLS_VERIFY` (default false: self-signed on the
node), `BATCH_CHUNK_LINES` (default 64), `BATCH_THREADS` (default 8).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

_TIMEOUT = (10.0, 600.0)


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _folder(params: dict[str, Any], batch_id: str) -> tuple[Path, Path]:
    input_file = Path(str(params["input_file"]))
    base = Path(str(params.get("output_folder_path") or input_file.parent))
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", str(params["model"]))
    folder = base / f"{input_file.stem}_{model}_{batch_id}"
    folder.mkdir(parents=True, exist_ok=True)
    return input_file, folder


def _read_progress(path: Path) -> dict[str, Any]:
    if path.exists():
        return dict(json.loads(path.read_text()))
    return {"lines_processed": 0, "num_responses": 0, "total_tokens": 0, "seconds": 0.0}


def _write_progress(path: Path, progress: dict[str, Any]) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(progress))
    partial.replace(path)  # atomic: a reader (or a resumed task) never sees half a file


def _send(session: requests.Session, base: str, model: str, raw: str) -> tuple[str, int]:
    """One line's output line and its tokens."""
    line = json.loads(raw)
    body = {**line.get("body", {}), "model": model}
    url = f"{base}/{str(line.get('url', '/v1/chat/completions')).lstrip('/')}"
    record: dict[str, Any] = {
        "id": f"batch_req_{line.get('custom_id')}",
        "custom_id": line.get("custom_id"),
    }
    try:
        answer = session.post(url, json=body, timeout=_TIMEOUT)
        content = answer.json() if answer.content else None
        record["response"] = {"status_code": answer.status_code, "body": content}
        record["error"] = None
        usage = content.get("usage") if isinstance(content, dict) else None
        tokens = int(usage.get("total_tokens") or 0) if isinstance(usage, dict) else 0
    except (requests.RequestException, ValueError) as exc:
        record["response"], record["error"] = None, {"message": str(exc)[:2000]}
        tokens = 0
    return json.dumps(record), tokens


def _over_http(params: dict[str, Any], input_file: Path, folder: Path) -> dict[str, Any]:
    base = _setting("INFERENCE_API_BASE_URL", "https://127.0.0.1:{api_port}")
    base = base.format(api_port=params.get("api_port", 8000)).rstrip("/")
    chunk_lines = int(_setting("BATCH_CHUNK_LINES", "64"))
    results = folder / f"{input_file.stem}.results.jsonl"
    progress_file = folder / f"{input_file.stem}.progress.json"
    progress = _read_progress(progress_file)
    done = int(progress["lines_processed"])
    with results.open("a+", encoding="utf-8") as out:
        # Lines of a chunk written after the last progress update (an interruption) go.
        out.seek(0)
        kept = sum(1 for _ in out)
        if kept > done:
            out.seek(0)
            lines = out.readlines()[:done]
            out.seek(0)
            out.truncate()
            out.writelines(lines)
    session = requests.Session()
    session.trust_env = False  # the model server is on this node, never behind a proxy
    session.verify = _setting("INFERENCE_TLS_VERIFY", "false").lower() in ("1", "true", "yes")
    started = time.time()
    with (
        input_file.open(encoding="utf-8") as source,
        results.open("a", encoding="utf-8") as out,
        ThreadPoolExecutor(int(_setting("BATCH_THREADS", "8"))) as pool,
    ):
        chunk: list[str] = []
        for number, raw in enumerate(source, start=1):
            if number <= done or not raw.strip():
                continue
            chunk.append(raw)
            if len(chunk) >= chunk_lines:
                _chunk(pool, session, base, params, chunk, out, progress, progress_file, started)
                chunk = []
        if chunk:
            _chunk(pool, session, base, params, chunk, out, progress, progress_file, started)
    session.close()
    return {"results_file": str(results), "progress_file": str(progress_file), **progress}


def _chunk(
    pool: ThreadPoolExecutor,
    session: requests.Session,
    base: str,
    params: dict[str, Any],
    chunk: list[str],
    out: Any,
    progress: dict[str, Any],
    progress_file: Path,
    started: float,
) -> None:
    answered = list(pool.map(lambda raw: _send(session, base, str(params["model"]), raw), chunk))
    out.writelines(line + "\n" for line, _ in answered)
    out.flush()
    os.fsync(out.fileno())
    progress["lines_processed"] += len(chunk)
    progress["num_responses"] += sum(1 for line, _ in answered if '"status_code": 200' in line)
    progress["total_tokens"] += sum(tokens for _, tokens in answered)
    progress["seconds"] = progress.get("seconds", 0.0) + (time.time() - started)
    _write_progress(progress_file, progress)


def _with_vllm(params: dict[str, Any], input_file: Path, folder: Path) -> dict[str, Any]:
    results = folder / f"{input_file.stem}.results.jsonl"
    command = [sys.executable, "-m", "vllm.entrypoints.openai.run_batch"]
    command += ["-i", str(input_file), "-o", str(results), "--model", str(params["model"])]
    subprocess.run(command, check=True)
    lines = sum(1 for _ in results.open(encoding="utf-8"))
    progress_file = folder / f"{input_file.stem}.progress.json"
    progress = {"lines_processed": lines, "num_responses": lines, "total_tokens": 0, "seconds": 0}
    _write_progress(progress_file, progress)
    return {"results_file": str(results), "progress_file": str(progress_file), **progress}


def batch_function(parameters: dict[str, Any]) -> str:
    """Run a batch; the summary as JSON text (the gateway stores it as the batch's result)."""
    started = time.time()
    params = parameters.get("model_params") if isinstance(parameters, dict) else None
    if not isinstance(params, dict) or not params.get("input_file") or not params.get("model"):
        raise ValueError("Missing required parameters: 'model_params.input_file' and 'model'")
    input_file, folder = _folder(params, str(parameters.get("batch_id", "batch")))
    if not input_file.is_file():
        raise FileNotFoundError(f"input_file {str(input_file)!r} is not a readable file")
    vllm = importlib.util.find_spec("vllm") is not None
    use_vllm = vllm and not os.environ.get("INFERENCE_API_BASE_URL")
    done = (_with_vllm if use_vllm else _over_http)(params, input_file, folder)
    seconds = max(time.time() - started, 1e-9)
    return json.dumps(
        {
            "results_file": done["results_file"],
            "progress_file": done["progress_file"],
            "metrics": {
                "response_time": seconds,
                "throughput_tokens_per_second": done["total_tokens"] / seconds,
                "total_tokens": done["total_tokens"],
                "num_responses": done["num_responses"],
                "lines_processed": done["lines_processed"],
            },
        }
    )
