"""docs/settings.md and .env.example stay in step with the declarations in config.py."""

from __future__ import annotations

import re
from pathlib import Path

from inference_gateway.config import GatewaySettings
from inference_gateway.settings_doc import PAGE, reference

ROOT = Path(__file__).resolve().parents[2]


def test_the_settings_page_is_what_config_declares() -> None:
    # Rewrite it with: .venv/bin/python -m inference_gateway.settings_doc
    assert PAGE.read_text() == reference()


def test_every_setting_is_in_the_page_with_its_bound() -> None:
    page = PAGE.read_text()
    for name in GatewaySettings.model_fields:
        assert f"| `{name}` |" in page, name
    assert "| `MAX_JSON_DEPTH` | integer > 0 | `64` |" in page
    assert "| `RECORD_RETENTION_DAYS` | integer ≥ 0 | `365` |" in page


def test_env_example_names_every_setting_and_only_those() -> None:
    text = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.M))
    declared = set(GatewaySettings.model_fields)
    # A setting still read the old way (env.get_*) until it is declared in config.py.
    settings_py = (ROOT / "inference_gateway" / "settings.py").read_text()
    legacy = set(re.findall(r'env\.get_\w+\(\s*"([A-Z][A-Z0-9_]+)"', settings_py))
    assert declared <= named, declared - named
    assert named - declared <= legacy, (named - declared) - legacy
