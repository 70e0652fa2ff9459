"""`igw agent configure`: point a coding agent at the gateway in its own config file.

Each writer reads the agent's file, sets only what belongs to the gateway (a provider named
`igw`, its models with their context windows, the key) and leaves every other setting as it
was; the agent's default model is set only when none is set or it is already one of ours. The
file then holds a key, so it is written with mode 0600.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit

from igw.errors import CliError

PROVIDER = "igw"
AGENTS = ("opencode", "codex", "claude")


@dataclass(frozen=True)
class Model:
    id: str
    context_window: int | None = None
    max_output: int | None = None


@dataclass(frozen=True)
class Target:
    gateway: str  # e.g. https://gateway.example.org
    key: str
    models: list[Model]
    default: str  # the model to make the agent's default

    @property
    def openai_base(self) -> str:
        return f"{self.gateway}/resource_server/v1"

    @property
    def anthropic_base(self) -> str:
        return f"{self.gateway}/resource_server"


def _write_private(path: Path, text: str) -> None:
    """Replace `path` whole with `text`, mode 0600 (it holds a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text() or "{}")
    except ValueError as exc:
        raise CliError(
            f"{path} is not plain JSON ({exc}); igw does not rewrite a file it cannot read "
            "back whole (comments?). Remove the comments or add the gateway by hand "
            "(docs/agents.md)."
        ) from None
    if not isinstance(data, dict):
        raise CliError(f"{path} does not hold a JSON object; fix it first.")
    return data


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def opencode_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(_home() / ".config")
    return Path(base) / "opencode" / "opencode.json"


def codex_path() -> Path:
    return Path(os.environ.get("CODEX_HOME") or _home() / ".codex") / "config.toml"


def claude_path() -> Path:
    base = os.environ.get("CLAUDE_CONFIG_DIR") or str(_home() / ".claude")
    return Path(base) / "settings.json"


def _ours(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.startswith(f"{PROVIDER}/"))


def configure_opencode(target: Target) -> Path:
    path = opencode_path()
    config = _read_json(path)
    config.setdefault("$schema", "https://opencode.ai/config.json")
    models: dict[str, Any] = {}
    for model in target.models:
        entry: dict[str, Any] = {"name": model.id}
        limit = {
            k: v for k, v in (("context", model.context_window), ("output", model.max_output)) if v
        }
        if limit:
            entry["limit"] = limit
        models[model.id] = entry
    providers = config.setdefault("provider", {})
    if not isinstance(providers, dict):
        raise CliError(f"{path}: 'provider' is not an object; fix it first.")
    providers[PROVIDER] = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "Inference gateway",
        "options": {"baseURL": target.openai_base, "apiKey": target.key},
        "models": models,
    }
    for field in ("model", "small_model"):
        if _ours(config.get(field)):
            config[field] = f"{PROVIDER}/{target.default}"
    _write_private(path, json.dumps(config, indent=2) + "\n")
    return path


def configure_codex(target: Target) -> Path:
    path = codex_path()
    try:
        document = tomlkit.parse(path.read_text()) if path.exists() else tomlkit.document()
    except tomlkit.exceptions.ParseError as exc:
        raise CliError(f"{path} is not valid TOML ({exc}); fix it first.") from None
    provider = tomlkit.table()
    provider["name"] = "Inference gateway"
    provider["base_url"] = target.openai_base
    provider["wire_api"] = "responses"  # the only API Codex speaks
    # Codex sends it as the bearer token (no environment variable to export).
    provider["experimental_bearer_token"] = target.key
    providers = document.get("model_providers")
    if providers is None:
        providers = tomlkit.table(is_super_table=True)
        document["model_providers"] = providers
    providers[PROVIDER] = provider
    if document.get("model_provider") in (None, PROVIDER):
        default = next(m for m in target.models if m.id == target.default)
        # tomlkit places new root keys before the first table, as TOML requires.
        document["model_provider"] = PROVIDER
        document["model"] = default.id
        if default.context_window:
            document["model_context_window"] = default.context_window
    _write_private(path, tomlkit.dumps(document))
    return path


def configure_claude(target: Target) -> Path:
    path = claude_path()
    config = _read_json(path)
    env = config.setdefault("env", {})
    if not isinstance(env, dict):
        raise CliError(f"{path}: 'env' is not an object; fix it first.")
    default = next(m for m in target.models if m.id == target.default)
    env.update(
        {
            "ANTHROPIC_BASE_URL": target.anthropic_base,
            # Sent as Authorization: Bearer, which the gateway reads like x-api-key.
            "ANTHROPIC_AUTH_TOKEN": target.key,
            "ANTHROPIC_MODEL": default.id,
            # Its background calls (titles, summaries) go to the "small, fast" model.
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": default.id,
            "ANTHROPIC_DEFAULT_SONNET_MODEL": default.id,
            "ANTHROPIC_DEFAULT_OPUS_MODEL": default.id,
        }
    )
    if default.max_output:
        env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(default.max_output)
    _write_private(path, json.dumps(config, indent=2) + "\n")
    return path


WRITERS = {"opencode": configure_opencode, "codex": configure_codex, "claude": configure_claude}
