"""Models in Anthropic's shape (`GET /v1/models[/{id}]` from the Anthropic client), paged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from resource_server_async.errors import GatewayError

# Anthropic's paging bounds for `limit` (https://docs.anthropic.com/en/api/models-list).
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
# The catalog does not know when a model was added; Anthropic's clients need a timestamp.
_CREATED_AT = "1970-01-01T00:00:00Z"


def wants_anthropic(request: Request) -> bool:
    """The Anthropic client sends `anthropic-version` with every request; OpenAI's never."""
    return "anthropic-version" in request.headers


def _limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise GatewayError(
            400,
            "invalid_request",
            f"limit: must be an integer between 1 and {MAX_LIMIT}, not {raw!r}",
            param="limit",
        )
    return int(raw)


def _position(names: list[str], model_id: str, param: str) -> int:
    try:
        return names.index(model_id)
    except ValueError:
        raise GatewayError(
            400, "invalid_request", f"{param}: no model {model_id!r} in this list", param=param
        ) from None


def anthropic_model(name: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name, "created_at": _CREATED_AT}


def anthropic_model_list(names: list[str], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of `names` (sorted): `limit` of them after `after_id`, or before `before_id`."""
    limit = _limit(query)
    start, stop = 0, len(names)
    if query.get("after_id"):
        start = _position(names, query["after_id"], "after_id") + 1
    if query.get("before_id"):
        stop = _position(names, query["before_id"], "before_id")
        start = max(start, stop - limit)
    page = names[start : min(stop, start + limit)]
    data = [anthropic_model(name) for name in page]
    return {
        "data": data,
        # More in the direction of paging: after the page, or before it for before_id.
        "has_more": start > 0 if query.get("before_id") else start + len(page) < stop,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }
