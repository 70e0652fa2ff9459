"""Installs the coding-agent CLIs of tests/agents/package-lock.json with npm, once per lock."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCK = HERE / "package-lock.json"
MODULES = HERE / "node_modules"
BIN = MODULES / ".bin"
# The lock file's hash as of the last install that finished: a changed lock reinstalls.
STAMP = MODULES / ".installed-lock-sha256"
# ~1 GB of native binaries from the registry: minutes on a slow link, seconds from npm's cache.
INSTALL_TIMEOUT = 900


class NodeMissing(Exception):
    """node or npm is not on PATH: the agents cannot be installed or run here."""


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def is_installed() -> bool:
    return STAMP.exists() and STAMP.read_text().strip() == lock_digest()


def ensure_installed() -> Path:
    """The directory of the agents' executables, installed first if the lock changed."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise NodeMissing(f"{' and '.join(missing)} not on PATH (Debian: apt-get install npm)")
    if not is_installed():
        # Not `npm ci`: it wants every platform's optional binary package in the lock, and the
        # registry here lacks some of OpenCode's. `install --no-save` follows the lock (exact
        # versions throughout) and leaves it as committed. Scripts must run: Claude Code and
        # OpenCode put their native binaries in place in them.
        subprocess.run(
            ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--foreground-scripts"],
            cwd=HERE,
            check=True,
            timeout=INSTALL_TIMEOUT,
        )
        STAMP.write_text(lock_digest() + "\n")
    return BIN


def main() -> int:
    try:
        print(f"coding agents installed in {ensure_installed()}")
    except NodeMissing as exc:
        # Not an error for `make test`: the agent tests skip and say why.
        print(f"coding agents not installed: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
