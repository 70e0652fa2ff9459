"""A fake PBS on PATH (qselect, qstat, pbsnodes as shell scripts) for end-to-end /jobs tests."""

from __future__ import annotations

import json
import stat
from pathlib import Path

READY = "All models started successfully."


class FakePBS:
    """One running job serving `models` (ready), one queued job (serving `queued`); counts
    qselect calls."""

    def __init__(
        self, root: Path, cluster: str, models: list[str], queued: str = "queued-model"
    ) -> None:
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.calls = root / "qselect.calls"
        scripts = root / "scripts"
        scripts.mkdir()
        running = scripts / "models.submit"
        assignments = "".join(
            f'model_name_{index}="{model}"\n' for index, model in enumerate(models)
        )
        running.write_text(f'{assignments}framework="vllm"\ncluster="{cluster}"\n')
        (scripts / "models.submit.stdout").write_text(f"starting\n{READY}\n")
        waiting = scripts / "queued.submit"
        waiting.write_text(f'model_name="{queued}"\nframework="vllm"\ncluster="{cluster}"\n')
        qstat = (
            "Job Id: 3001.pbs\n    job_state = R\n    exec_host = node-1/0*64\n"
            f"    Resource_List.nodect = 1\n    Submit_arguments = -q demand {running}\n\n"
            "Job Id: 3002.pbs\n    job_state = Q\n"
            f"    Resource_List.nodect = 1\n    Submit_arguments = {waiting}\n"
        )
        nodes = {"nodes": {"node-2": {"state": "free"}, "node-3": {"state": "free"}}}
        self._command("qselect", "3001.pbs\n3002.pbs\n", count=True)
        self._command("qstat", qstat)
        self._command("pbsnodes", json.dumps(nodes))

    def _command(self, name: str, output: str, count: bool = False) -> None:
        data = self.bin / f"{name}.out"
        data.write_text(output)
        script = self.bin / name
        counting = f"echo call >> '{self.calls}'\n" if count else ""
        script.write_text(f"#!/bin/sh\n{counting}cat '{data}'\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)

    @property
    def qselect_calls(self) -> int:
        return len(self.calls.read_text().splitlines()) if self.calls.exists() else 0
