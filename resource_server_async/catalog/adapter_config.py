"""Base of the pydantic schemas that adapters declare for their `config` object."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AdapterConfig(BaseModel):
    """Config keys an adapter reads. Unknown keys are kept (older deployments carry extras)."""

    model_config = ConfigDict(extra="allow", frozen=True)


def check_http_url(value: str) -> str:
    """Validator body for URL keys: an absolute http(s) URL, surrounding blanks removed."""
    value = value.strip()
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value
