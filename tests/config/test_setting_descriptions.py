"""Every setting has a docstring of its own: docs/settings.md gives each one a row of its own.

A docstring copied from the setting before it, or one that continues it ("...of which"),
tells an operator reading the table the wrong thing about the setting (it happened when the
settings moved to config.py)."""

from __future__ import annotations

from collections import defaultdict

from inference_gateway.config import GatewaySettings


def _descriptions() -> dict[str, str]:
    """Each setting's description as the page shows it: whitespace folded."""
    return {
        name: " ".join((field.description or "").split())
        for name, field in GatewaySettings.model_fields.items()
    }


def test_every_setting_has_a_description() -> None:
    missing = [name for name, text in _descriptions().items() if not text]
    assert missing == [], f"settings without a docstring: {missing}"


def test_no_two_settings_share_a_description() -> None:
    by_text: dict[str, list[str]] = defaultdict(list)
    for name, text in _descriptions().items():
        if text:
            by_text[text].append(name)
    shared = [names for names in by_text.values() if len(names) > 1]
    assert shared == [], f"settings sharing one docstring (give each its own): {shared}"


def test_no_description_continues_another() -> None:
    # A table row is read alone: "...and bytes of" has no subject there.
    continued = [name for name, text in _descriptions().items() if text.startswith(("...", "…"))]
    assert continued == [], f"docstrings that continue the one before: {continued}"
