"""What igw remembers between runs: the gateway URL and its Globus tokens (the user's eyes only).

The file lives in the user's config directory (platformdirs: $XDG_CONFIG_HOME/igw on Linux),
is written whole to a temporary file and renamed (never half-written), with mode 0600 in a
directory of mode 0700.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs

_FILE = "state.json"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir("igw", appauthor=False))


def state_path() -> Path:
    return config_dir() / _FILE


def load() -> dict[str, Any]:
    path = state_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # An unreadable file is treated as no login; the next login rewrites it.
        return {}
    return data if isinstance(data, dict) else {}


def save(data: dict[str, Any]) -> Path:
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=".state-", dir=directory)
    try:
        with os.fdopen(descriptor, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(temporary, state_path())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return state_path()


def normalize_url(url: str) -> str:
    return url.strip().rstrip("/")


def remember_requirements(gateway: str, requirements: dict[str, Any]) -> None:
    """A session the gateway asked for (a GARE's authorization parameters), kept for login."""
    data = load()
    data.setdefault("requirements", {})[gateway] = requirements
    save(data)


def take_requirements(gateway: str) -> dict[str, Any]:
    """The requirements remembered for `gateway` (forgotten once a login used them)."""
    data = load()
    found = data.get("requirements", {}).pop(gateway, None)
    if found is not None:
        save(data)
    return found if isinstance(found, dict) else {}
