"""Typed readers for settings that come from the environment (CONTRACT.md §6 list syntax)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

_LIST_SEPARATORS = re.compile(r"[\s;,]+")


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


def get_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def get_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean (use true/false)")


def get_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None


def get_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None


def get_list(name: str, default: list[str] | None = None) -> list[str]:
    """A list separated by whitespace, `;` or `,`; a JSON list is accepted too."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return list(default or [])
    if raw.startswith("["):
        value = get_json(name, [])
        if not isinstance(value, list):
            raise ConfigurationError(f"{name} must be a JSON list")
        return [str(item).strip() for item in value if str(item).strip()]
    return [item for item in _LIST_SEPARATORS.split(raw) if item]


def get_json(name: str, default: Any) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{name} is not valid JSON: {exc}") from None
