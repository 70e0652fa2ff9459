"""Anthropic's count_tokens on an endpoint: passed through, or counted by the server's tokenizer.

The same choice as Messages (`messages_api.mode_of` and `chat_only`): a server that speaks
Messages gets `/v1/messages/count_tokens` as the client sent it; for one that does not, its
tokenizer route (`config.tokenizer`) counts the prompt that the translation would send.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import Response

from resource_server_async.endpoints.base import BaseEndpoint, InferenceRequest
from resource_server_async.endpoints.tokenizer import TokenizerConfig, tokenizer_of
from resource_server_async.errors import GatewayError
from resource_server_async.inference import messages_api, pipeline
from resource_server_async.translation.messages_request import chat_messages, chat_tools
from resource_server_async.translation.tokenizer_request import token_count, tokenizer_body
from resource_server_async.upstream import errors as upstream_errors

logger = logging.getLogger(__name__)

OPERATION = "messages/count_tokens"


def _no_route(error: GatewayError) -> bool:
    # The server's own 404 (not the gateway's): it has no such route.
    return error.status == 404 and (error.info or {}).get("upstream_status") == 404


async def run(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    """`{"input_tokens": N}` for a validated count_tokens request on `endpoint`."""
    mode = messages_api.mode_of(endpoint)
    if mode == "translate" or (mode == "auto" and messages_api.chat_only.known(endpoint)):
        return await counted(endpoint, parsed)
    try:
        return await native(endpoint, parsed)
    except GatewayError as error:
        if mode == "native" or not _no_route(error):
            raise
    # Not remembered as chat-only: a server may have /v1/messages without count_tokens.
    logger.info("%r has no /v1/messages/count_tokens; counting with its tokenizer", endpoint)
    return await counted(endpoint, parsed)


async def native(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    call = pipeline.prepare(endpoint, OPERATION, parsed)
    return pipeline.json_response(await endpoint.complete(call), endpoint, call)


def _operation(route: str) -> str:
    """The route as an operation: adapters call `{server}/v1/{operation}` (CONTRACT §3 for the
    registered function), and `..` takes that back to the server's root (RFC 3986 dot
    segments, which aiohttp and requests both resolve)."""
    return "../" + route.lstrip("/")


def _no_tokenizer(endpoint: BaseEndpoint, tokenizer: TokenizerConfig) -> GatewayError:
    return GatewayError(
        404,
        "tokenizer_not_found",
        f"Tokens of model {endpoint.model!r} cannot be counted: its server speaks no Anthropic "
        f"Messages and has no {tokenizer.kind} tokenizer at {tokenizer.route}. The endpoint's "
        'config.tokenizer ({"kind": ..., "path": ...}) names it; ask the gateway operator.',
        info=upstream_errors.endpoint_info(endpoint, upstream_status=404),
    )


async def counted(endpoint: BaseEndpoint, parsed: pipeline.ParsedRequest) -> Response:
    tokenizer = tokenizer_of(endpoint.config)
    body = tokenizer_body(
        tokenizer, endpoint.model, chat_messages(parsed.body), chat_tools(parsed.body)
    )
    call = InferenceRequest(
        operation=_operation(tokenizer.route),
        body=body,
        raw=orjson.dumps(body),
        principal=parsed.principal,
        request_id=parsed.request_id,
    )
    try:
        reply = await endpoint.complete(call)
        if not 200 <= reply.status < 300:
            refused = upstream_errors.reply_error(reply.status, reply.body, endpoint)
            raise upstream_errors.report(refused, endpoint, call.request_id)
    except GatewayError as failure:
        if _no_route(failure):
            raise _no_tokenizer(endpoint, tokenizer) from None
        raise
    try:
        answer: Any = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        answer = None
    count = token_count(answer)
    if count is None:
        broken = upstream_errors.broken(
            endpoint, f"its tokenizer ({tokenizer.route}) answered without a token count"
        )
        raise upstream_errors.report(broken, endpoint, call.request_id)
    return Response(orjson.dumps({"input_tokens": count}), media_type="application/json")
