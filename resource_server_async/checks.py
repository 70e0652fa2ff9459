"""System checks (`manage.py check`): the clusters and endpoints already in the database."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register
from django.db import DatabaseError


@register("gateway")
def check_catalog_rows(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from resource_server_async.models import database_problems

    try:
        problems = database_problems()
    except DatabaseError:
        # Tables not created yet (before `migrate`): nothing to check.
        return []
    messages: list[CheckMessage] = []
    for problem in problems:
        cls = Error if problem.level == "error" else Warning
        messages.append(
            cls(problem.message, obj=problem.where, id=f"gateway.{'E' if cls is Error else 'W'}001")
        )
    return messages
