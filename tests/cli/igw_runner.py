"""Running `igw` as a researcher would: a subprocess with its own HOME, against real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.auth.globus_standin import GlobusStandIn

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Igw:
    """One researcher's machine: a HOME of their own, the gateway and the Globus stand-in."""

    home: Path
    gateway_url: str
    standin: GlobusStandIn
    last_authorize_url: str = ""

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "LANG": "C.UTF-8",
            # globus-sdk talks to the stand-in instead of auth.globus.org.
            "GLOBUS_SDK_SERVICE_URL_AUTH": self.standin.url,
        }
        env.update(extra)
        return env

    def run(self, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "igw", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(**env),
            cwd=self.home,
            timeout=60,
        )

    def ok(self, *args: str, **env: str) -> str:
        done = self.run(*args, **env)
        assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str, **env: str) -> Any:
        return json.loads(self.ok(*args, "--json", **env))

    def login(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """`igw login --no-browser`: open the printed URL as the browser would, paste the code."""
        argv = [sys.executable, "-m", "igw", "login", "--gateway", self.gateway_url]
        process = subprocess.Popen(
            [*argv, "--no-browser", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            cwd=self.home,
        )
        assert process.stdout is not None and process.stdin is not None
        url = ""
        for line in process.stdout:
            if "/v2/oauth2/authorize?" in line:
                url = line.strip()
                break
        assert url, process.communicate(timeout=30)
        self.last_authorize_url = url
        page = requests.get(url, timeout=10)
        assert page.status_code == 200, page.text
        code = page.text.splitlines()[1]
        stdout, stderr = process.communicate(code + "\n", timeout=60)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    @property
    def state_file(self) -> Path:
        return self.home / ".config" / "igw" / "state.json"

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data
