"""Cluster status functions: the service user's model jobs on PBS or Slurm (CONTRACT.md §4).

Registered with Globus Compute as source code and run on a login node where this project is not
installed, so the module is self-contained (standard library only). Entry points: `pbs_status`
(`qselect`, `qstat -xf`, `pbsnodes`) and `slurm_status` (`squeue`, `sinfo`); both take no
argument and return JSON text.

A job's models, framework and cluster come from `model_name="..."`, `framework="..."` and
`cluster="..."` assignments in its submit script (the worker start-up of the Compute endpoint,
which Parsl writes into the script); a running job is "running" once the script's `.stdout`
(Parsl's `--output`/`-o`) contains READY_LINE, "starting" before. One job that cannot be read
is reported as such; it never spoils the answer for the others.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import subprocess
from collections.abc import Callable
from typing import Any

READY_LINE = "All models started successfully."
NOT_AVAILABLE = "N/A"
COMMAND_TIMEOUT = 30
# Submit scripts are small; logs are not. Bounds on what is read of each.
MAX_SCRIPT_BYTES = 1024 * 1024
MAX_LOG_BYTES = 64 * 1024 * 1024
# Models named like this are users' private batch jobs, listed apart (as deployed sites do).
BATCH_MARKER = "batch_job"
BATCH_JOBS_DIR = "~/batch_jobs"

Runner = Callable[[list[str]], str]

_MODEL_RE = re.compile(r"""\bmodel_name\w*\s*=\s*(["'])(.+?)\1""")
_FRAMEWORK_RE = re.compile(r"""\bframework\s*=\s*(["'])(.+?)\1""")
_CLUSTER_RE = re.compile(r"""\bcluster\s*=\s*(["'])(.+?)\1""")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
# `qstat -f` attribute lines are indented by four spaces; wrapped values continue on lines
# that start with a tab (and may contain " = " themselves, as Variable_List does).
_QSTAT_ATTRIBUTE_RE = re.compile(r"^ {4}([\w.\-]+) = ?(.*)$")


def run_command(args: list[str]) -> str:
    """stdout of a command; RuntimeError with a short reason if it fails or hangs."""
    try:
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise RuntimeError(f"{args[0]}: command not found on this node") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{args[0]} did not finish within {COMMAND_TIMEOUT}s") from None
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip()[:500]
        raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}): {reason}")
    return result.stdout


def service_user() -> str:
    return os.environ.get("USER") or getpass.getuser()


def empty_report(free_nodes: int = -1) -> dict[str, Any]:
    return {
        "running": [],
        "queued": [],
        "others": [],
        "private-batch-running": [],
        "private-batch-queued": [],
        "cluster_status": {"free_nodes": free_nodes},
    }


def _read_head(path: str, limit: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read(limit)


def parse_submit_script(text: str) -> dict[str, str]:
    """Models (comma-separated, in order), framework and cluster named in a submit script."""
    models = [match.group(2).strip() for match in _MODEL_RE.finditer(text)]
    framework = _FRAMEWORK_RE.search(text)
    cluster = _CLUSTER_RE.search(text)
    return {
        "Models": ",".join(m for m in models if m) or NOT_AVAILABLE,
        "Framework": framework.group(2).strip() if framework else NOT_AVAILABLE,
        "Cluster": cluster.group(2).strip() if cluster else NOT_AVAILABLE,
    }


def script_info(path: str | None) -> dict[str, str]:
    if path:
        try:
            return parse_submit_script(_read_head(path, MAX_SCRIPT_BYTES))
        except OSError:
            pass
    return {"Models": NOT_AVAILABLE, "Framework": NOT_AVAILABLE, "Cluster": NOT_AVAILABLE}


def models_ready(stdout_paths: list[str]) -> bool:
    """Whether one of the job's output files announces that all its models started."""
    for path in stdout_paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                read = 0
                for line in handle:
                    if READY_LINE in line:
                        return True
                    read += len(line)
                    if read > MAX_LOG_BYTES:
                        break
        except OSError:
            continue
    return False


def batch_job_info(job_id: str, directory: str = BATCH_JOBS_DIR) -> dict[str, str] | None:
    """A private batch job's details from its marker file `{model}_{batch id}_{user}_{job id}`.

    Models and user names may contain `_`: the batch id (a UUID) is what splits them.
    """
    folder = os.path.expanduser(directory)
    try:
        names = sorted(
            os.listdir(folder),
            key=lambda name: os.path.getmtime(os.path.join(folder, name)),
            reverse=True,
        )
    except OSError:
        return None
    short_id = job_id.split(".")[0]
    for name in names:
        parts = name.split("_")
        if len(parts) < 4 or parts[-1].split(".")[0] != short_id:
            continue
        for index in range(1, len(parts) - 2):
            if _UUID_RE.match(parts[index]):
                return {
                    "Models": "_".join(parts[:index]),
                    "Batch ID": parts[index],
                    "Username": "_".join(parts[index + 1 : -1]),
                }
    return None


def _job(info: dict[str, str], **fields: str) -> dict[str, str]:
    job = dict(info)
    for key in (
        "Model Status",
        "Job ID",
        "Job State",
        "Host Name",
        "Job Comments",
        "Nodes Reserved",
        "Walltime",
        "Estimated Start Time",
    ):
        job[key] = fields.get(key.replace(" ", "_").lower(), NOT_AVAILABLE) or NOT_AVAILABLE
    return job


def _unreadable(job_id: str, state: str, error: Exception) -> dict[str, str]:
    info = {"Models": NOT_AVAILABLE, "Framework": NOT_AVAILABLE, "Cluster": NOT_AVAILABLE}
    return _job(
        info,
        model_status="other",
        job_id=job_id,
        job_state=state,
        job_comments=f"could not be read: {type(error).__name__}: {error}"[:300],
    )


def place(report: dict[str, Any], phase: str, job: dict[str, str], private: bool) -> None:
    """Put a job in its list: phase is "running", "queued" or "other"; private batch jobs
    have lists of their own."""
    if phase == "running":
        report["private-batch-running" if private else "running"].append(job)
    elif phase == "queued":
        report["private-batch-queued" if private else "queued"].append(job)
    else:
        report["others"].append(job)


def running_status(job_id: str, info: dict[str, str], stdout_paths: list[str]) -> str:
    """A running job's model status: "running" once it announced its models ready, else
    "starting". A private batch job runs once its marker file exists (which names its model
    and user)."""
    if BATCH_MARKER in info.get("Models", ""):
        batch = batch_job_info(job_id)
        if batch is not None:
            info.update(batch)
            return "running"
        return "starting"
    return "running" if models_ready(stdout_paths) else "starting"


def scheduler_job(
    phase: str, script: str | None, outputs: list[str], job_id: str, **fields: str
) -> tuple[str, bool, dict[str, str]]:
    """(phase, private batch job?, job) of one job as PBS or Slurm reports it: its phase
    ("running", "queued" or "other"), submit script, output files and scheduler fields."""
    info = script_info(script)
    # Before running_status, which gives a batch job the model named by its marker file.
    private = BATCH_MARKER in info["Models"]
    if phase == "running":
        status = running_status(job_id, info, outputs)
    else:
        status = "queued" if phase == "queued" else "other"
    return phase, private, _job(info, model_status=status, job_id=job_id, **fields)


# --- PBS ----------------------------------------------------------------------------------


def parse_qstat_xf(text: str) -> list[dict[str, str]]:
    """`qstat -xf` output as one attribute dict per job (with its id under "Job Id")."""
    jobs: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    last_key = ""
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            current = {"Job Id": line.split(":", 1)[1].strip()}
            jobs.append(current)
            last_key = ""
            continue
        if current is None or not line.strip():
            continue
        match = None if line.startswith("\t") else _QSTAT_ATTRIBUTE_RE.match(line)
        if match:
            last_key = match.group(1)
            current[last_key] = match.group(2).strip()
        elif last_key:
            current[last_key] += line.strip()
    return jobs


def submit_script_of(submit_arguments: str) -> str | None:
    """The script path: the end of `Submit_arguments` (options come before it). A path with
    spaces spans several words: the longest tail that names a file wins."""
    words = submit_arguments.split()
    for start in range(len(words)):
        candidate = " ".join(words[start:]).strip("'\"")
        if candidate.startswith("/") and os.path.isfile(candidate):
            return candidate
    return words[-1].strip("'\"") if words else None


def pbs_job(attributes: dict[str, str]) -> tuple[str, bool, dict[str, str]]:
    """(phase, private batch job?, job) of one `qstat -xf` job."""
    state = attributes.get("job_state", NOT_AVAILABLE)
    script = submit_script_of(attributes.get("Submit_arguments", ""))
    outputs = [script + ".stdout"] if script else []
    output_path = attributes.get("Output_Path", "")
    if output_path:
        outputs.append(output_path.split(":", 1)[-1])
    return scheduler_job(
        {"R": "running", "Q": "queued"}.get(state, "other"),
        script,
        outputs,
        attributes.get("Job Id", NOT_AVAILABLE),
        job_state=state,
        host_name=attributes.get("exec_host", ""),
        job_comments=attributes.get("comment", ""),
        nodes_reserved=attributes.get("Resource_List.nodect", ""),
        walltime=attributes.get("resources_used.walltime", ""),
        estimated_start_time=attributes.get("estimated.start_time", ""),
    )


def parse_pbsnodes_json(text: str) -> int:
    """Nodes that are free and not marked broken, from `pbsnodes -a -F json`."""
    nodes = json.loads(text).get("nodes", {})
    return sum(
        1
        for node in nodes.values()
        if isinstance(node, dict)
        and node.get("state") == "free"
        and str(node.get("resources_available", {}).get("broken", "")).lower() != "true"
    )


def pbs_report(run: Runner = run_command, user: str | None = None) -> dict[str, Any]:
    user = user or service_user()
    report = empty_report()
    job_ids = run(["qselect", "-u", user]).split()
    if job_ids:
        for attributes in parse_qstat_xf(run(["qstat", "-xf", *job_ids])):
            try:
                phase, private, job = pbs_job(attributes)
            except Exception as error:  # one odd job must not spoil the whole answer
                phase, private = "other", False
                job = _unreadable(
                    attributes.get("Job Id", NOT_AVAILABLE),
                    attributes.get("job_state", NOT_AVAILABLE),
                    error,
                )
            place(report, phase, job, private)
    # Without pbsnodes, free_nodes stays -1 (unknown).
    with contextlib.suppress(RuntimeError, ValueError, AttributeError):
        report["cluster_status"]["free_nodes"] = parse_pbsnodes_json(
            run(["pbsnodes", "-a", "-F", "json"])
        )
    return report


def pbs_status() -> str:
    """The registered PBS status function (no arguments, JSON text)."""
    return json.dumps(pbs_report())


# --- Slurm --------------------------------------------------------------------------------

# squeue fields, separated by a character no field contains; the job name comes last so that
# even a name containing it cannot shift the other fields.
SQUEUE_SEPARATOR = "\x1f"
SQUEUE_FIELDS = ("%i", "%T", "%N", "%D", "%M", "%S", "%r", "%o", "%j")


def squeue_command(user: str) -> list[str]:
    return ["squeue", "-h", "-u", user, "-o", SQUEUE_SEPARATOR.join(SQUEUE_FIELDS)]


def parse_squeue(text: str) -> list[dict[str, str]]:
    keys = ("id", "state", "nodes", "node_count", "time", "start", "reason", "command", "name")
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = line.split(SQUEUE_SEPARATOR, len(keys) - 1)
        values += [""] * (len(keys) - len(values))
        rows.append(dict(zip(keys, (v.strip() for v in values), strict=True)))
    return rows


def slurm_job(row: dict[str, str]) -> tuple[str, bool, dict[str, str]]:
    """(phase, private batch job?, job) of one squeue row."""
    state = row["state"]
    script = row["command"] if row["command"] and row["command"] != "(null)" else None
    phase = {"RUNNING": "running", "PENDING": "queued"}.get(state, "other")
    start = row["start"] if row["start"] not in ("", "N/A", "(null)") else ""
    return scheduler_job(
        phase,
        script,
        [script + ".stdout"] if script else [],
        row["id"],
        job_state=state,
        host_name=row["nodes"] if phase == "running" else "",
        job_comments=row["reason"] if row["reason"] not in ("None", "(null)") else "",
        nodes_reserved=row["node_count"],
        walltime=row["time"],
        estimated_start_time=start if phase == "queued" else "",
    )


def parse_sinfo(text: str) -> int:
    """Idle nodes from `sinfo -h -N -o "%N %t"` (a node listed in several partitions once)."""
    idle = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "idle":
            idle.add(parts[0])
    return len(idle)


def slurm_report(run: Runner = run_command, user: str | None = None) -> dict[str, Any]:
    user = user or service_user()
    report = empty_report()
    for row in parse_squeue(run(squeue_command(user))):
        try:
            phase, private, job = slurm_job(row)
        except Exception as error:  # one odd job must not spoil the whole answer
            phase, private = "other", False
            job = _unreadable(row.get("id", NOT_AVAILABLE), row["state"], error)
        place(report, phase, job, private)
    # Without sinfo, free_nodes stays -1 (unknown).
    with contextlib.suppress(RuntimeError):
        report["cluster_status"]["free_nodes"] = parse_sinfo(
            run(["sinfo", "-h", "-N", "-o", "%N %t"])
        )
    return report


def slurm_status() -> str:
    """The registered Slurm status function (no arguments, JSON text)."""
    return json.dumps(slurm_report())
