"""Session affinity and the vLLM cache salt: keeping a conversation on the server whose prefix
cache holds it, and keeping one principal's cached prefixes from serving another's.

A request names its session with `x-session-id` (or the reference gateway's
`X-ALCF-Session-ID`). Among the candidates of the best class, the session goes to the one with
the highest rendezvous weight (hash of session and endpoint): the same endpoint every time while
the set is unchanged, and when an endpoint leaves the set only its sessions move.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from django.conf import settings
from starlette.requests import Request

from resource_server_async.auth.principal import Principal
from resource_server_async.endpoints.base import BaseEndpoint

SESSION_HEADERS = ("x-session-id", "x-alcf-session-id")
# A longer header is cut: the id only feeds a hash, and the hash's input must stay small.
_MAX_SESSION_CHARS = 256
# Operations whose vLLM request accepts `cache_salt`.
SALTED_OPERATIONS = frozenset({"chat/completions", "completions"})


def session_of(request: Request) -> str | None:
    headers = request.headers
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if value:
            return value[:_MAX_SESSION_CHARS]
    return None


def _weight(session: str, endpoint: BaseEndpoint) -> bytes:
    return hashlib.blake2b(f"{session}\0{endpoint.slug}".encode(), digest_size=8).digest()


def session_choice(session: str, group: Sequence[BaseEndpoint]) -> BaseEndpoint:
    """The session's endpoint among `group` (rendezvous hashing)."""
    return max(group, key=lambda endpoint: _weight(session, endpoint))


def cache_salt(principal: Principal) -> str:
    """The principal's salt: a keyed hash of its id, so that it cannot be guessed or chosen."""
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, principal.id.encode(), hashlib.sha256).hexdigest()[:32]


def wants_salt(endpoint: BaseEndpoint, operation: str) -> bool:
    return (
        settings.VLLM_CACHE_SALT
        and operation in SALTED_OPERATIONS
        and endpoint.row.framework.lower() == "vllm"
    )
