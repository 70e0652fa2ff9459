"""How many tokens a request may use, reserved at admission and corrected at its end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

if TYPE_CHECKING:
    from resource_server_async.admission.limits import AdmissionRequest

# The prompt's tokens, before any tokenizer has seen it: one per 4 bytes of the request body
# (JSON syntax included). English text runs at about 4 characters a token, so this errs high,
# which is the safe side for a reservation that the real usage corrects.
PROMPT_BYTES_PER_TOKEN = 4
# The completion cap of each family, in the order they are looked for.
_MAX_FIELDS = ("max_completion_tokens", "max_output_tokens", "max_tokens")


def reserved_tokens(operation: str, body: dict[str, Any], body_bytes: int, default: int) -> int:
    """Prompt estimate plus the completion cap the request names (else `default`)."""
    prompt = -(-body_bytes // PROMPT_BYTES_PER_TOKEN)
    if operation == "embeddings":
        return prompt
    for name in _MAX_FIELDS:
        cap = body.get(name)
        if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0:
            return prompt + cap
    return prompt + default


_default_completion: int | None = None  # LIMITS_RESERVE_COMPLETION_TOKENS, read once


@receiver(setting_changed)
def _forget_default(**_: Any) -> None:
    global _default_completion
    _default_completion = None


def request_reservation(request: AdmissionRequest) -> int:
    """The request's reservation, computed once: the limits and the allocations both charge it."""
    state = request.admission
    if state is not None and state.reserved >= 0:
        return state.reserved
    global _default_completion
    if _default_completion is None:
        # A Django setting is a lazy-object lookup per read; this runs per request.
        _default_completion = settings.LIMITS_RESERVE_COMPLETION_TOKENS
    tokens = reserved_tokens(request.operation, request.body, len(request.raw), _default_completion)
    if state is not None:
        state.reserved = tokens
    return tokens
