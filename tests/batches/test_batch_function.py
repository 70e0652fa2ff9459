"""compute_functions/batch.py on its own, against the fake model server: a task started again
after an interruption resumes after the last chunk it wrote, and sends no line twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compute_functions.batch import batch_function
from tests.batches.conftest import CountingBackend, chat_line, jsonl, read_jsonl


def test_a_rerun_resumes_after_the_last_chunk_written(
    backend: CountingBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERENCE_API_BASE_URL", backend.url)
    monkeypatch.setenv("BATCH_CHUNK_LINES", "2")
    ids = [f"resume-{n}" for n in range(5)]
    source = tmp_path / "input.jsonl"
    source.write_bytes(jsonl([chat_line(i, delay=0.01, id=i) for i in ids]))
    # An earlier run wrote two lines and their progress, then half of the next chunk.
    folder = tmp_path / "out" / "input_fake-model_b1"
    folder.mkdir(parents=True)
    earlier = [json.dumps({"custom_id": i, "response": {"status_code": 200}}) for i in ids[:3]]
    (folder / "input.results.jsonl").write_text("\n".join(earlier) + "\n")
    progress = {"lines_processed": 2, "num_responses": 2, "total_tokens": 10, "seconds": 1.0}
    (folder / "input.progress.json").write_text(json.dumps(progress))

    summary = json.loads(
        batch_function(
            {
                "model_params": {
                    "input_file": str(source),
                    "model": "fake-model",
                    "output_folder_path": str(tmp_path / "out"),
                },
                "batch_id": "b1",
                "username": "someone",
            }
        )
    )
    assert summary["metrics"]["lines_processed"] == 5
    assert summary["metrics"]["num_responses"] == 5
    lines = read_jsonl(Path(summary["results_file"]).read_bytes())
    assert [line["custom_id"] for line in lines] == ids
    assert {i: backend.answered[i] for i in ids} == {i: int(n >= 2) for n, i in enumerate(ids)}
    assert json.loads(Path(summary["progress_file"]).read_text())["lines_processed"] == 5


def test_a_missing_input_file_is_the_tasks_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a readable file"):
        batch_function({"model_params": {"input_file": str(tmp_path / "none.jsonl"), "model": "m"}})
