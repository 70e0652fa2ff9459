"""An endpoint adapter with a bug (it raises an unexpected exception), installed by dotted path
as an operator installs any adapter: what the gateway answers when its own code fails."""

from __future__ import annotations

from resource_server_async.endpoints.base import InferenceRequest, UpstreamReply
from resource_server_async.endpoints.direct_api import DirectAPIEndpoint

PATH = "tests.accounting.faulty_endpoint.FaultyEndpoint"


class FaultyEndpoint(DirectAPIEndpoint):
    async def complete(self, request: InferenceRequest) -> UpstreamReply:
        request.calling(self)
        raise ZeroDivisionError("a bug in an endpoint adapter")
