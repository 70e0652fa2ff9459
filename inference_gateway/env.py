"""Typed readers of single environment variables, and the secret-strength rule.

The gateway's settings are declared and checked in inference_gateway/config.py; these readers
remain for code that reads one variable on its own (and for a setting added the old way, until
it is declared there). get_int refuses values below `minimum` like config.py's bounds do."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable
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


def get_int(name: str, default: int, minimum: int | None = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name}={raw!r} must be at least {minimum}")
    return value


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


def get_json_object(name: str, value_is: Callable[[Any], bool], value_shape: str) -> dict[str, Any]:
    """A JSON object whose every value passes `value_is` ({} when unset); the error says which
    key is wrong and what it must be (`value_shape`), so a bad value fails at start."""
    value = get_json(name, {})
    if not isinstance(value, dict):
        raise ConfigurationError(
            f"{name} must be a JSON object {{key: {value_shape}}}, not a JSON {_kind(value)}"
        )
    for key, item in value.items():
        if not value_is(item):
            raise ConfigurationError(f"{name}[{key!r}] must be {value_shape}, not {item!r}")
    return value


def get_json_list(name: str) -> list[str]:
    """A JSON list of strings ([] when unset)."""
    value = get_json(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigurationError(f"{name} must be a JSON list of strings, not {value!r}")
    return value


def is_str(value: Any) -> bool:
    return isinstance(value, str)


def _kind(value: Any) -> str:
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return kinds.get(type(value), "null" if value is None else type(value).__name__)


# A secret key must carry at least this many bits by the estimate below: 32 random hex digits
# (secrets.token_hex(16)) measure 90-125, token_urlsafe(50) ~350, "ab" * 25 50, "x" * 50 0.
MIN_SECRET_BITS = 80
MIN_SECRET_LENGTH = 32


def secret_weakness(secret: str) -> str | None:
    """Why `secret` is too weak to sign tokens, or None: too short, or too little entropy by
    the frequency of its characters (a repeated or patterned string scores low)."""
    if len(secret) < MIN_SECRET_LENGTH:
        return f"it has {len(secret)} characters (at least {MIN_SECRET_LENGTH} are needed)"
    counts = Counter(secret).values()
    bits = sum(n * math.log2(len(secret) / n) for n in counts)
    if bits < MIN_SECRET_BITS:
        return f"it carries about {bits:.0f} bits of entropy (at least {MIN_SECRET_BITS})"
    return None


def get_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A list of IP networks (`10.0.0.0/8`, `::1`; a bare address is a network of one)."""
    networks = []
    for item in get_list(name):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigurationError(f"{name}: {item!r} is not an IP address or network") from None
    return networks
