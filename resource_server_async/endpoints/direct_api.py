"""Endpoint adapter for directly reachable OpenAI-compatible model servers."""

from __future__ import annotations

import os

from pydantic import Field, field_validator

from resource_server_async.adapter_config import AdapterConfig, check_http_url
from resource_server_async.endpoints.base import BaseEndpoint


class DirectAPIEndpointConfig(AdapterConfig):
    api_url: str = Field(description="base URL of an OpenAI-compatible server")
    api_key_env_name: str | None = Field(
        default=None, description="name of the environment variable that holds the server's key"
    )
    api_request_timeout: float = Field(default=120.0, gt=0, description="seconds")

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value)


class DirectAPIEndpoint(BaseEndpoint):
    Config = DirectAPIEndpointConfig

    @classmethod
    def environment_problems(cls, config: AdapterConfig) -> list[str]:
        assert isinstance(config, DirectAPIEndpointConfig)
        name = config.api_key_env_name
        if name and not os.environ.get(name):
            return [
                f"environment variable {name} (config.api_key_env_name) is not set: "
                "requests to this endpoint will be refused until it is"
            ]
        return []
