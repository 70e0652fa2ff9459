"""Chart.js for the dashboard, from npm at the version of assets/package-lock.json, installed
once per lock by `make dashboard-assets` (part of `make test` and `make demo`); the gateway
serves it under /static/dashboard/vendor/ (inference_gateway/asgi.py; collectstatic too)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent / "assets"
LOCK = HERE / "package-lock.json"
MODULES = HERE / "node_modules"
# The files the pages load: Chart.js's UMD build (one file, no module loader).
VENDOR_DIR = MODULES / "chart.js" / "dist"
STAMP = MODULES / ".installed-lock-sha256"
INSTALL_TIMEOUT = 300


def lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def is_installed() -> bool:
    return (
        STAMP.exists()
        and STAMP.read_text().strip() == lock_digest()
        and (VENDOR_DIR / "chart.umd.min.js").exists()
    )


def ensure_installed() -> Path:
    if not is_installed():
        if shutil.which("npm") is None:
            raise RuntimeError("npm is not on PATH (Debian: apt-get install npm)")
        # `npm ci` installs exactly the lock's versions, checking their integrity hashes.
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=INSTALL_TIMEOUT
        )
        STAMP.write_text(lock_digest() + "\n")
    return VENDOR_DIR


def main() -> int:
    try:
        print(f"dashboard assets installed in {ensure_installed()}")
    except (RuntimeError, subprocess.SubprocessError) as exc:
        print(f"dashboard assets not installed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
