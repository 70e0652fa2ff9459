"""Endpoint adapter for models served on HPC clusters through Globus Compute."""

from __future__ import annotations

from pydantic import Field, model_validator

from resource_server_async.adapter_config import AdapterConfig
from resource_server_async.endpoints.base import BaseEndpoint


class GlobusComputeEndpointConfig(AdapterConfig):
    api_port: int = Field(ge=1, le=65535, description="port of the inference server on the cluster")
    endpoint_uuid: str = Field(
        min_length=1, description="Globus Compute endpoint that runs the model"
    )
    function_uuid: str = Field(min_length=1, description="registered inference function")
    batch_endpoint_uuid: str | None = None
    batch_function_uuid: str | None = None

    @model_validator(mode="after")
    def _batch_pair(self) -> GlobusComputeEndpointConfig:
        if bool(self.batch_endpoint_uuid) != bool(self.batch_function_uuid):
            raise ValueError("batch_endpoint_uuid and batch_function_uuid must be set together")
        return self

    @property
    def supports_batch(self) -> bool:
        return bool(self.batch_endpoint_uuid and self.batch_function_uuid)


class GlobusComputeEndpoint(BaseEndpoint):
    Config = GlobusComputeEndpointConfig
