"""A principal's own file or batch by id: another principal's is as absent as one never made."""

from __future__ import annotations

from typing import TypeVar

from django.db.models import Model

from resource_server_async.errors import GatewayError

M = TypeVar("M", bound=Model)


def owned(model: type[M], principal_id: str, pk: str, kind: str) -> M:
    """The row, or 404 `<kind>_not_found` (param `<kind>_id`) for any other principal's."""
    row = model._default_manager.filter(pk=pk, principal_id=principal_id).first()
    if row is None:
        raise GatewayError(404, f"{kind}_not_found", f"No {kind} {pk!r}.", param=f"{kind}_id")
    return row
