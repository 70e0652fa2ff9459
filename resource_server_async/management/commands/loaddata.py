"""Django's loaddata, with errors an operator can act on and a report of cross-row problems.

Row errors (slug, adapter, config) stop the load in the pre_save check and nothing is written.
Problems between rows (an endpoint whose cluster is not loaded yet) are reported, not fatal:
operators often load endpoints.json and clusters.json with two separate commands.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from django.core.management.base import CommandError
from django.core.management.commands.loaddata import Command as DjangoLoaddata
from django.db import DatabaseError

from resource_server_async.catalog.fixture_files import describe_json_error
from resource_server_async.catalog.validation import FixtureRowError
from resource_server_async.models import database_problems


def _json_syntax_error(label: str) -> str | None:
    path = Path(label)
    if path.suffix != ".json" or not path.is_file():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"{path}: {describe_json_error(text, exc)}"
    return None


class Command(DjangoLoaddata):
    help = DjangoLoaddata.help + (
        " Cluster and endpoint rows are validated: an invalid row stops the load and nothing is "
        "written; problems between rows are reported afterwards."
    )

    def loaddata(self, fixture_labels: Sequence[str]) -> None:
        syntax = [error for label in fixture_labels if (error := _json_syntax_error(label))]
        if syntax:
            raise CommandError("Fixtures not loaded:\n  " + "\n  ".join(syntax))
        try:
            super().loaddata(fixture_labels)
        except (FixtureRowError, DatabaseError) as exc:
            # Raised inside loaddata's transaction: everything it wrote is rolled back. Django
            # has already added the file and row to the message (e.g. a duplicate cluster name
            # under another pk).
            raise CommandError(f"Fixtures not loaded. {exc}") from None
        for problem in database_problems():
            self.stderr.write(self.style.WARNING(f"{problem.level.upper()}: {problem}"))
