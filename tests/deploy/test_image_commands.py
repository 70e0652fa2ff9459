"""The container image's commands, run outside a container (no container runtime here).

What deploy/Containerfile and deploy/compose.yaml say is read from them, so that the test runs
what the image runs: the build stage's COPY lines make the build context, its RUN step
(deploy/build_venv.sh) makes the virtualenv, the run stage's COPY --from, ENV, WORKDIR and CMD
lay out and start the gateway, and compose's `migrate` command prepares the database. The
image's absolute paths (/opt/venv, /app, ...) sit under a temporary directory. Left out: the
apt-get step (system packages for compiling; every locked package has a wheel here), the user
switch, and pip's cache setting of the build stage (pip's cache keeps this test to about a
minute; select or skip it with `-m image`).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from scripts import processes
from tests.servers import ROOT, free_port, scratch_database

CONTAINERFILE = ROOT / "deploy" / "Containerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
# The one RUN step the test runs; the image and the test share the script.
BUILD_STEP = "sh deploy/build_venv.sh /opt/venv"

pytestmark = [pytest.mark.image, pytest.mark.e2e]


@dataclass
class Stage:
    name: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (instruction, arguments)

    def args(self, instruction: str) -> list[str]:
        return [args for name, args in self.steps if name == instruction]


def _stages(text: str) -> dict[str, Stage]:
    """The Containerfile's stages by name, each with its instructions (continuations joined)."""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            current = stages.setdefault(args.split()[-1], Stage(args.split()[-1]))
        elif current is not None:
            current.steps.append((instruction, args))
    return stages


class ImageRoot:
    """A directory standing for the image's file system: /opt/venv is <root>/opt/venv."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    def value(self, value: str) -> str:
        """An ENV value with the image's paths moved under the root ($PATH: the host's)."""
        return ":".join(
            os.environ["PATH"] if part == "$PATH" else
            str(self.path(part)) if part.startswith("/") else part
            for part in value.split(":")
        )  # fmt: skip


def _ignored() -> Callable[[str, list[str]], set[str]]:
    """The build's .dockerignore patterns, as names to leave out of a copied directory."""
    ignore_file = CONTAINERFILE.with_name("Containerfile.dockerignore")
    names = [line.strip().removeprefix("**/") for line in ignore_file.read_text().splitlines()]
    return shutil.ignore_patterns(*[name for name in names if name and "/" not in name])


def _build_context(build: Stage, image: ImageRoot) -> Path:
    """The build stage's COPY lines, from this checkout into its WORKDIR (a directory's
    contents go to the destination; files go into a destination ending in /)."""
    workdir = image.path(build.args("WORKDIR")[-1])
    workdir.mkdir(parents=True)
    for args in build.args("COPY"):
        *sources, destination = shlex.split(args)
        for source in sources:
            target = workdir / destination
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=_ignored(), dirs_exist_ok=True)
                continue
            if destination.endswith("/"):
                target = target / Path(source).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, target)
    return workdir


def _run_stage_layout(run: Stage, image: ImageRoot) -> None:
    for args in run.args("COPY"):
        words = shlex.split(args)
        assert words[0] == "--from=build", args
        source, destination = image.path(words[1]), image.path(words[2])
        if source != destination:  # the same path in both stages: already in place
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, destination)


def _environment(run: Stage, image: ImageRoot) -> dict[str, str]:
    """The run stage's ENV only, as a container starts with (no PYTHONPATH, no .venv)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(image.root), "LANG": "C.UTF-8"}
    for args in run.args("ENV"):
        for pair in shlex.split(args):
            name, _, value = pair.partition("=")
            env[name] = image.value(value)
    image.path(env["GATEWAY_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    return env


def _served_command(cmd: list[str], port: int) -> list[str]:
    """The CMD, listening on loopback and a free port (a runtime publishes the image's 8000)."""
    served = list(cmd)
    served[served.index("--host") + 1] = "127.0.0.1"
    served[served.index("--port") + 1] = str(port)
    return served


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with scratch_database(tmp_path) as url:
        yield url


def test_the_images_commands_build_migrate_and_serve(tmp_path: Path, database: str) -> None:
    stages = _stages(CONTAINERFILE.read_text())
    build, run = stages["build"], stages["run"]
    assert BUILD_STEP in build.args("RUN")
    image = ImageRoot(tmp_path / "image")

    context = _build_context(build, image)
    subprocess.run(
        shlex.split(BUILD_STEP.replace("/opt/venv", str(image.path("/opt/venv")))),
        cwd=context,
        env={**os.environ, "PYTHON": sys.executable, "PIP_QUIET": "1"},
        check=True,
        timeout=600,
    )
    _run_stage_layout(run, image)

    env = _environment(run, image)
    # Production settings, checked at start: no GATEWAY_DEV_MODE, a strong secret.
    env.update(SECRET_KEY=secrets.token_urlsafe(50), DATABASE_URL=database)
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    workdir = image.path(run.args("WORKDIR")[-1])
    python = shutil.which("python", path=env["PATH"])
    assert python is not None and Path(python).is_relative_to(image.root)
    # The project comes from the image's virtualenv, not from this checkout.
    where = subprocess.run(
        ["python", "-c", "import resource_server_async; print(resource_server_async.__file__)"],
        cwd=workdir, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(image.path("/opt/venv"))

    migrate = yaml.safe_load(COMPOSE.read_text())["services"]["migrate"]["command"]
    migrated = subprocess.run(
        migrate, cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]

    port = free_port()
    cmd = json.loads(run.args("CMD")[-1])
    server = processes.start(_served_command(cmd, port), tmp_path / "gateway.log", env=env,
                             cwd=workdir)  # fmt: skip
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/resource_server/ready", process=server)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        processes.stop(server)
