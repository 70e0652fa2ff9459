"""Small HTTP helpers of the API: orjson responses and bounded JSON body reading."""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from starlette.requests import Request
from starlette.responses import Response

from resource_server_async.errors import GatewayError


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        return orjson.dumps(content)


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The request body, refusing (413) more than `limit` bytes even when sent chunked."""
    limit = settings.MAX_REQUEST_BODY_BYTES if limit is None else limit
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise GatewayError(
                400, "invalid_content_length", "Content-Length is not a number"
            ) from None
        if too_big:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(
    request: Request, limit: int | None = None
) -> tuple[dict[str, Any], bytes]:
    """The body parsed as a JSON object, and its bytes; 400 with the reason otherwise."""
    raw = await read_body(request, limit)
    if not raw.strip():
        raise GatewayError(400, "invalid_json", "The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(
            400, "invalid_json", f"The request body is not valid JSON: {exc}"
        ) from None
    if not isinstance(body, dict):
        raise GatewayError(
            400,
            "invalid_json",
            f"The request body must be a JSON object, not {type(body).__name__}.",
        )
    return body, raw


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413, "request_too_large", f"The request body is larger than the limit of {limit} bytes."
    )
