"""docs/settings.md from the declarations in config.py (python -m inference_gateway.settings_doc).

tests/config/test_settings_doc.py checks that the committed page is what this writes, so the
reference cannot drift from what the gateway accepts."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from inference_gateway.config import GatewaySettings, Shape

PAGE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
_SECTION = re.compile(r"^    # --- (.+?) -+$")
_FIELD = re.compile(r"^    ([A-Z][A-Z0-9_]+): ")

INTRO = """# Settings reference

Every setting is an environment variable (`.env.example` has them all, with comments). The
gateway reads and checks them all once, when it starts (`manage.py`, the ASGI app, the batch
worker): a wrong value stops it with a message naming the variable and what is wrong, and
lists every wrong variable at once. Secrets and URLs are never echoed in that message.

- Lists: separated by whitespace, `;` or `,`, or a JSON list (`["a", "b"]`).
- Booleans: `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
- An empty value (`NAME=`) means the default.
- Sizes, counts and timeouts must be greater than 0; a cache's lifetime, and the settings whose
  meaning says so, may be 0 (no caching, off, unlimited).
- Outside development mode (`GATEWAY_DEV_MODE=false`): `SECRET_KEY` is required and must be
  strong (32 characters or more, about 80 bits of entropy); `INTERNAL_STREAMING_SECRET` must be
  as strong when set, and is required when Globus Compute streaming is configured; a client id
  (`GLOBUS_APPLICATION_ID`, `SERVICE_ACCOUNT_ID`) needs its secret; `DEBUG` is refused.
- Several worker processes (`GATEWAY_WORKERS`, else `WEB_CONCURRENCY`, else the server's
  `--workers`/`-w`) without `REDIS_URL` are refused while Globus Compute streaming is
  configured (`SERVICE_ACCOUNT_ID` with the globus executor, `COMPUTE_EXECUTOR=local`, or,
  checked once the catalog is loaded, a Globus Compute endpoint): a stream's chunks would reach
  a worker that does not hold its client. The deploy files set `GATEWAY_WORKERS` to the total
  over all hosts.

To add a setting, declare it in `inference_gateway/config.py` (type, default, a docstring), read
it in `inference_gateway/settings.py`, add it to `.env.example`, and rewrite this page:
`.venv/bin/python -m inference_gateway.settings_doc`.

This page is generated from `inference_gateway/config.py`.
"""


def _type(name: str, field: FieldInfo, schema: dict[str, Any]) -> str:
    """The type and bounds as an operator reads them, from the field's JSON schema."""
    shapes = [m for m in field.metadata if isinstance(m, Shape)]
    if shapes:
        return str(shapes[0])
    options = [o for o in schema.get("anyOf", [schema]) if o.get("type") != "null"]
    option = options[0]
    if "enum" in option:
        return " or ".join(f"`{choice}`" for choice in option["enum"])
    if option.get("type") == "array":
        return "list of IP networks" if "Network" in repr(field.annotation) else "list"
    if name.endswith("_URL"):
        return "URL"
    words = {"integer": "integer", "number": "number", "boolean": "boolean", "string": "string"}
    parts = [words.get(option.get("type", ""), "string")]
    for key, sign in (("exclusiveMinimum", ">"), ("minimum", "≥"), ("maximum", "≤")):
        if key in option:
            parts.append(f"{sign} {option[key]}")
    return " ".join(parts)


def _default(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return "`" + " ".join(map(str, value)) + "`"
    return f"`{value}`"


def reference() -> str:
    """The whole page: the introduction, then one table per section of config.py."""
    fields = GatewaySettings.model_fields
    schemas = GatewaySettings.model_json_schema()["properties"]
    source = Path(sys.modules[GatewaySettings.__module__].__file__ or "").read_text()
    out = [INTRO]
    for line in source.splitlines():
        if section := _SECTION.match(line):
            out.append(f"\n## {section.group(1)}\n")
            out.append("| variable | type | default | meaning |\n|---|---|---|---|")
        elif (match := _FIELD.match(line)) and match.group(1) in fields:
            name = match.group(1)
            field = fields[name]
            meaning = " ".join((field.description or "").split()).replace("|", "\\|")
            kind = _type(name, field, schemas[name])
            out.append(f"| `{name}` | {kind} | {_default(field.default)} | {meaning} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    PAGE.write_text(reference())
    print(f"wrote {PAGE}")
