"""A self-contained HTML page rendering the OpenAPI document (no scripts, no external assets)."""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} h2{margin-top:2.5rem;border-bottom:1px solid #ddd}
section.op{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;margin:1rem 0}
.method{font-weight:700;color:#fff;border-radius:4px;padding:.1rem .45rem;margin-right:.5rem}
.post{background:#2e7d32} .get{background:#1565c0}
code,.path{font-family:ui-monospace,monospace} .path{font-weight:600}
table{border-collapse:collapse;width:100%;margin:.5rem 0} td,th{border:1px solid #e3e3e3;
padding:.25rem .5rem;text-align:left;vertical-align:top} th{background:#f6f6f6}
.req{color:#b71c1c;font-weight:600} .muted{color:#666}
"""


def _content_security_policy() -> str:
    """Nothing but the page's own inline style; no scripts, no framing, no form posts."""
    digest = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


# Headers of the page: its policy, and frame protection for browsers without frame-ancestors.
HEADERS = {"Content-Security-Policy": _content_security_policy(), "X-Frame-Options": "DENY"}


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " | ".join(k for k in kinds if k)
    items = schema.get("items")
    if isinstance(items, dict) and items.get("type"):
        item_kind = items["type"]
        item_text = " | ".join(item_kind) if isinstance(item_kind, list) else item_kind
        text = text.replace("array", f"array of {item_text}", 1)
    return text or "any"


def _limits(schema: dict[str, Any]) -> str:
    parts = []
    if "minimum" in schema:
        parts.append(f"≥ {schema['minimum']:g}")
    if "maximum" in schema:
        parts.append(f"≤ {schema['maximum']:g}")
    if "minItems" in schema:
        parts.append(f"at least {schema['minItems']} item(s)")
    items = schema.get("items")
    if isinstance(items, dict) and items.get("required"):
        parts.append("items need " + ", ".join(items["required"]))
    return "; ".join(parts)


def _fields_table(schema: dict[str, Any]) -> str:
    required = set(schema.get("required", []))
    rows = []
    for name, field in schema.get("properties", {}).items():
        mark = ' <span class="req">required</span>' if name in required else ""
        rows.append(
            f"<tr><td><code>{escape(name)}</code>{mark}</td><td>{escape(_type(field))}</td>"
            f"<td>{escape(_limits(field))}</td><td>{escape(field.get('description', ''))}</td></tr>"
        )
    one_of = [" or ".join(item["required"]) for item in schema.get("anyOf", [])]
    needs = f"<p>Needs at least one of: {escape(', '.join(one_of))}.</p>" if one_of else ""
    return (
        f"<p>{escape(schema.get('description', ''))}</p>{needs}"
        "<table><tr><th>field</th><th>type</th><th>limits</th><th>description</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _operation(path: str, method: str, op: dict[str, Any], components: dict[str, Any]) -> str:
    parts = [
        f'<section class="op" id="{escape(op.get("operationId", path + method))}">'
        f'<div><span class="method {method}">{method.upper()}</span>'
        f'<span class="path">{escape(path)}</span></div>'
        f"<p><b>{escape(op.get('summary', ''))}</b> {escape(op.get('description', ''))}</p>"
    ]
    for param in op.get("parameters", []):
        parts.append(
            f"<div><code>{{{escape(param['name'])}}}</code>: "
            f"{escape(param.get('description', ''))}</div>"
        )
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = body.get("schema", {}).get("$ref", "")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        parts.append(f"<h4>Request body: {escape(name)}</h4>")
        parts.append(_fields_table(components.get(name, {})))
    answers = "".join(
        f"<li><b>{escape(status)}</b> {escape(answer.get('description', ''))}</li>"
        for status, answer in op.get("responses", {}).items()
    )
    parts.append(f"<details><summary>Responses</summary><ul>{answers}</ul></details></section>")
    return "".join(parts)


def render(document: dict[str, Any], spec_url: str) -> str:
    info = document.get("info", {})
    components = document.get("components", {}).get("schemas", {})
    by_tag: dict[str, list[str]] = {}
    for path, methods in document.get("paths", {}).items():
        for method, op in methods.items():
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append(_operation(path, method, op, components))
    sections = "".join(f"<h2>{escape(tag)}</h2>{''.join(ops)}" for tag, ops in by_tag.items())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(info.get('title', 'API'))}</title>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{escape(info.get('title', 'API'))}</h1>"
        f"<p>{escape(info.get('description', ''))}</p>"
        f'<p class="muted">Machine-readable: <a href="{escape(spec_url)}">{escape(spec_url)}</a>'
        " (OpenAPI 3.1).</p>"
        f"{sections}</body></html>"
    )
