"""An endpoint's tokenizer (`config.tokenizer`): which server route counts a prompt's tokens.

Anthropic's count_tokens for models whose server does not speak Messages is answered by the
model server's own tokenizer. The route and its request shape differ by server: vLLM's
`POST /tokenize` takes chat messages and tools and applies the chat template;
llama-cpp-python's `POST /extras/tokenize/count` and llama.cpp's `POST /tokenize` take text.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TokenizerKind = Literal["vllm", "llama-cpp-python", "llama.cpp"]

DEFAULT_PATHS: dict[str, str] = {
    "vllm": "/tokenize",
    "llama-cpp-python": "/extras/tokenize/count",
    "llama.cpp": "/tokenize",
}


class TokenizerConfig(BaseModel):
    """`{"kind": "vllm"}` (the default), and `path` when the server serves it elsewhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TokenizerKind = Field(default="vllm", description="the request shape the route takes")
    path: str | None = Field(
        default=None, description="route from the server's root, e.g. /tokenize (by kind)"
    )

    @field_validator("path")
    @classmethod
    def _rooted(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or ".." in value):
            raise ValueError("must be a path from the server's root, starting with /")
        return value

    @property
    def route(self) -> str:
        return self.path or DEFAULT_PATHS[self.kind]


def tokenizer_of(config: object) -> TokenizerConfig:
    """The endpoint config's tokenizer; adapters without the key get the default (vLLM's)."""
    tokenizer = getattr(config, "tokenizer", None)
    return tokenizer if isinstance(tokenizer, TokenizerConfig) else TokenizerConfig()
