"""What a model can do (`config.capabilities`) and the other names it answers to (`config.aliases`).

Both keys sit in any endpoint's config, whatever its adapter, so they are checked here rather
than in each adapter's schema: `catalog_entry_problems` for row validation, `catalog_entry` when
the snapshot is built. `/v1/models` shows the capabilities as the operator wrote them, with the
`schema_version` of this description, so that clients can tell which field names to expect.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Version of the `capabilities` object's field names; raise it when a field changes meaning.
SCHEMA_VERSION: Literal[1] = 1

Modality = Literal["text", "image", "audio", "video", "file"]
Protocol = Literal["openai", "anthropic"]


class Capabilities(BaseModel):
    """An endpoint's `config.capabilities`. Unknown keys are refused: a misspelt field would
    otherwise vanish from every model list without a word."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION, description="version of these field names (1)"
    )
    context_window_tokens: int | None = Field(
        default=None, gt=0, description="tokens of prompt plus answer the model accepts"
    )
    max_output_tokens: int | None = Field(
        default=None, gt=0, description="largest answer, in tokens"
    )
    input_modalities: list[Modality] | None = Field(
        default=None, description="what a prompt may hold: text, image, audio, video, file"
    )
    tool_calling: bool | None = Field(default=None, description="true if it calls tools")
    reasoning: bool | None = Field(default=None, description="true if it reasons before answering")
    streaming: bool | None = Field(default=None, description="true if it streams answers")
    api_protocols: list[Protocol] | None = Field(
        default=None, description="APIs it speaks natively: openai, anthropic"
    )

    def as_listing(self) -> dict[str, Any]:
        return self.model_dump()


class CatalogEntry(BaseModel):
    """The keys of an endpoint's config that the catalog itself reads (adapters ignore them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    capabilities: Capabilities | None = Field(
        default=None, description="what the model can do (docs/fixtures.md)"
    )
    aliases: tuple[str, ...] = Field(
        default=(), description="other model names that reach this endpoint"
    )

    @field_validator("aliases")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(name.strip() for name in value)
        if any(not name for name in names):
            raise ValueError("aliases must be non-empty model names")
        return names


EMPTY_ENTRY = CatalogEntry()
