"""The PBS and Slurm status functions on recorded command output (CONTRACT.md §4 shape)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from compute_functions import scheduler_status as status

DATA = Path(__file__).parent / "data"
BATCH_ID = "3f2c9a64-1b7e-4c55-9d0a-8e6f1a2b3c4d"


@pytest.fixture
def scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Submit scripts and logs as the Compute endpoint's Parsl provider leaves them."""
    folder = tmp_path / "submit scripts"
    folder.mkdir()
    (folder / "llama.submit").write_text(
        '#!/bin/bash\nmodel_name="meta-llama/Meta-Llama-3.1-70B-Instruct"\n'
        "model_name_2='mistral_large v2'\n"
        'framework="vllm"\ncluster="sophia"\nmodel_framework="ignored"\n'
    )
    (folder / "llama.submit.stdout").write_text(
        "loading...\nAll models started successfully.\nserving\n"
    )
    (folder / "qwen.submit").write_text(
        'export model_name="Qwen/Qwen2.5 72B_Instruct"\nframework="vllm"\ncluster="sophia"\n'
    )
    (folder / "mixtral.submit").write_text(
        'model_name="mistralai/Mixtral-8x22B"\nframework="vllm"\ncluster="sophia"\n'
    )
    (folder / "batch.submit").write_text(
        'model_name="batch_job"\nframework="vllm"\ncluster="sophia"\n'
    )
    (folder / "slurm-llama.sh").write_text(
        'model_name="meta-llama/Llama-3.3-70B"\nframework="vllm"\ncluster="polaris"\n'
    )
    (folder / "slurm-llama.sh.stdout").write_text("All models started successfully.\n")
    (folder / "slurm qwen.sh").write_text('model_name="qwen_with_underscores"\n')
    (folder / "slurm-starting.sh").write_text('model_name="starting-model"\nframework="vllm"\n')
    home = tmp_path / "home"
    (home / "batch_jobs").mkdir(parents=True)
    marker = f"my_model_v2_{BATCH_ID}_jane_doe_1005.sophia-pbs-01.lab.alcf.anl.gov"
    (home / "batch_jobs" / marker).write_text("")
    monkeypatch.setenv("HOME", str(home))
    return folder


def recorded(name: str, scripts: Path) -> str:
    return (DATA / name).read_text().replace("{scripts}", str(scripts))


def job(**fields: str) -> dict[str, str]:
    base = {
        "Models": "N/A",
        "Framework": "N/A",
        "Cluster": "N/A",
        "Model Status": "N/A",
        "Job ID": "N/A",
        "Job State": "N/A",
        "Host Name": "N/A",
        "Job Comments": "N/A",
        "Nodes Reserved": "N/A",
        "Walltime": "N/A",
        "Estimated Start Time": "N/A",
    }
    base.update(fields)
    return base


def pbs_runner(scripts: Path, calls: list[list[str]]) -> status.Runner:
    outputs = {
        "qselect": "1001.sophia-pbs-01.lab.alcf.anl.gov\n1002.sophia-pbs-01\n",
        "qstat": recorded("qstat_xf.txt", scripts),
        "pbsnodes": recorded("pbsnodes.json", scripts),
    }

    def run(args: list[str]) -> str:
        calls.append(args)
        return outputs[args[0]]

    return run


def test_pbs_report_from_recorded_output(scripts: Path) -> None:
    calls: list[list[str]] = []

    report = status.pbs_report(pbs_runner(scripts, calls), user="svc_inference")

    assert calls == [
        ["qselect", "-u", "svc_inference"],
        ["qstat", "-xf", "1001.sophia-pbs-01.lab.alcf.anl.gov", "1002.sophia-pbs-01"],
        ["pbsnodes", "-a", "-F", "json"],
    ]
    llama, qwen, stdin_job = report["running"]
    assert llama == job(
        Models="meta-llama/Meta-Llama-3.1-70B-Instruct,mistral_large v2",
        Framework="vllm",
        Cluster="sophia",
        **{
            "Model Status": "running",
            "Job ID": "1001.sophia-pbs-01.lab.alcf.anl.gov",
            "Job State": "R",
            "Host Name": "sophia-gpu-07/0*64",
            "Job Comments": "Job run at Mon Jan 06 at 08:01 on (sophia-gpu-07:ncpus=64:ngpus=8)",
            "Nodes Reserved": "1",
            "Walltime": "05:12:44",
        },
    )
    # A wrapped Submit_arguments still names the script; no ready line yet: starting.
    assert qwen["Models"] == "Qwen/Qwen2.5 72B_Instruct"
    assert qwen["Model Status"] == "starting"
    assert qwen["Host Name"] == "sophia-gpu-02/0*64+sophia-gpu-03/0*64"
    assert qwen["Job Comments"].endswith("(sophia-gpu-03:ncpus=64)")
    # Submitted without a script: nothing to read, still listed.
    assert stdin_job == job(
        **{
            "Model Status": "starting",
            "Job ID": "1006.sophia-pbs-01.lab.alcf.anl.gov",
            "Job State": "R",
            "Host Name": "sophia-gpu-11/0*64",
            "Nodes Reserved": "1",
        }
    )
    assert report["queued"] == [
        job(
            Models="mistralai/Mixtral-8x22B",
            Framework="vllm",
            Cluster="sophia",
            **{
                "Model Status": "queued",
                "Job ID": "1003.sophia-pbs-01.lab.alcf.anl.gov",
                "Job State": "Q",
                "Job Comments": "Not Running: Insufficient amount of resource: ngpus",
                "Nodes Reserved": "1",
                "Estimated Start Time": "Tue Jan  7 02:00:00 2025",
            },
        )
    ]
    assert report["others"] == [
        job(
            **{
                "Model Status": "other",
                "Job ID": "1004.sophia-pbs-01.lab.alcf.anl.gov",
                "Job State": "H",
                "Job Comments": "job held, too many failed attempts to run",
                "Nodes Reserved": "1",
            }
        )
    ]
    # The batch marker file splits on the batch id: names keep their underscores.
    (batch,) = report["private-batch-running"]
    assert batch["Models"] == "my_model_v2"
    assert batch["Batch ID"] == BATCH_ID
    assert batch["Username"] == "jane_doe"
    assert batch["Model Status"] == "running"
    assert report["private-batch-queued"] == []
    assert report["cluster_status"] == {"free_nodes": 2}


def test_pbs_without_jobs_and_without_pbsnodes(scripts: Path) -> None:
    def run(args: list[str]) -> str:
        if args[0] == "pbsnodes":
            raise RuntimeError("pbsnodes: command not found on this node")
        return ""

    assert status.pbs_report(run, user="svc") == status.empty_report(-1)


def test_slurm_report_from_recorded_output(scripts: Path) -> None:
    outputs = {
        "squeue": recorded("squeue.txt", scripts),
        "sinfo": recorded("sinfo.txt", scripts),
    }
    calls: list[list[str]] = []

    def run(args: list[str]) -> str:
        calls.append(args)
        return outputs[args[0]]

    report = status.slurm_report(run, user="svc_inference")

    assert calls[0] == status.squeue_command("svc_inference")
    ready, starting = report["running"]
    assert ready == job(
        Models="meta-llama/Llama-3.3-70B",
        Framework="vllm",
        Cluster="polaris",
        **{
            "Model Status": "running",
            "Job ID": "2001",
            "Job State": "RUNNING",
            "Host Name": "gpu[01-02]",
            "Nodes Reserved": "2",
            "Walltime": "1:02:03",
        },
    )
    assert (starting["Models"], starting["Model Status"]) == ("starting-model", "starting")
    # A script path with a space, a job name with the separator in it: read correctly.
    assert report["queued"] == [
        job(
            Models="qwen_with_underscores",
            **{
                "Model Status": "queued",
                "Job ID": "2002",
                "Job State": "PENDING",
                "Job Comments": "Resources",
                "Nodes Reserved": "1",
                "Walltime": "0:00",
                "Estimated Start Time": "2025-01-07T02:00:00",
            },
        )
    ]
    (completing,) = report["others"]
    assert (completing["Job ID"], completing["Model Status"]) == ("2004", "other")
    assert report["cluster_status"] == {"free_nodes": 2}


def test_one_unreadable_job_does_not_spoil_the_answer(
    scripts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = status.pbs_job

    def flaky(attributes: dict[str, str]) -> tuple[str, bool, dict[str, str]]:
        if attributes["Job Id"].startswith("1002"):
            raise UnicodeError("odd bytes in the job's attributes")
        return real(attributes)

    monkeypatch.setattr(status, "pbs_job", flaky)

    report = status.pbs_report(pbs_runner(scripts, []), user="svc")

    assert [j["Job ID"].split(".")[0] for j in report["running"]] == ["1001", "1006"]
    broken = [j for j in report["others"] if j["Job ID"].startswith("1002")]
    assert broken == [
        job(
            **{
                "Model Status": "other",
                "Job ID": "1002.sophia-pbs-01.lab.alcf.anl.gov",
                "Job State": "R",
                "Job Comments": "could not be read: UnicodeError: odd bytes in the job's "
                "attributes",
            }
        )
    ]


def test_failing_qselect_fails_the_function() -> None:
    def run(args: list[str]) -> str:
        raise RuntimeError("qselect -u failed (1): qselect: Unknown user")

    with pytest.raises(RuntimeError, match="Unknown user"):
        status.pbs_report(run, user="nobody")


def _fake_command(folder: Path, name: str, output_file: Path) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\ncat '{output_file}'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_pbs_status_runs_the_real_commands(
    scripts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (
        ("qselect", "1001.sophia-pbs-01\n"),
        ("qstat", recorded("qstat_xf.txt", scripts)),
        ("pbsnodes", recorded("pbsnodes.json", scripts)),
    ):
        output = tmp_path / f"{name}.out"
        output.write_text(text)
        _fake_command(bin_dir, name, output)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("USER", "svc_inference")

    report = json.loads(status.pbs_status())

    assert [j["Job ID"].split(".")[0] for j in report["running"]] == ["1001", "1002", "1006"]
    assert report["cluster_status"] == {"free_nodes": 2}


def test_run_command_reports_a_missing_command() -> None:
    with pytest.raises(RuntimeError, match="no-such-scheduler-command: command not found"):
        status.run_command(["no-such-scheduler-command"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('model_name="a/b"\n', "a/b"),
        ("model_name = 'with space'\nmodel_name_2=\"x_y\"\n", "with space,x_y"),
        ('my_model_name="not this"\n', "N/A"),
        ("nothing here\n", "N/A"),
    ],
)
def test_models_in_a_submit_script(text: str, expected: str) -> None:
    assert status.parse_submit_script(text)["Models"] == expected
