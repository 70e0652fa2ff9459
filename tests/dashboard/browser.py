"""Debian's chromium driven by Playwright (never a downloaded browser), and where screenshots go."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.servers import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Screenshots of every page, kept after the run (gitignored: var/).
ARTIFACTS = ROOT / "var" / "test-artifacts" / "dashboard"


def launch_options() -> dict[str, object]:
    # No sandbox: CI and this machine run the suite as root, where chromium refuses it.
    return {"executable_path": CHROMIUM, "headless": True, "args": ["--no-sandbox"]}


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"
