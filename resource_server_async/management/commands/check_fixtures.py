"""`manage.py check_fixtures FILE...`: validate fixture files without writing anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from resource_server_async.catalog.fixture_files import check_files


class Command(BaseCommand):
    help = (
        "Check cluster and endpoint fixture files (JSON syntax, slugs, adapters, configs, "
        "references) and report every problem at once. Writes nothing."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument(
            "--no-database",
            action="store_true",
            help="do not consult clusters already in the database for endpoint references",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        known: dict[str, dict[str, Any]] = {}
        if not options["no_database"]:
            known = _database_clusters()
        problems = check_files(options["files"], known)
        errors = [p for p in problems if p.level == "error"]
        for problem in problems:
            style = self.style.ERROR if problem.level == "error" else self.style.WARNING
            self.stdout.write(style(f"{problem.level.upper()}: {problem}"))
        warnings = len(problems) - len(errors)
        summary = (
            f"{len(options['files'])} file(s) checked: "
            f"{len(errors)} error(s), {warnings} warning(s)"
        )
        if errors:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))


def _database_clusters() -> dict[str, dict[str, Any]]:
    from resource_server_async.models import Cluster

    try:
        return {c.cluster_name: c.as_fields() for c in Cluster.objects.all()}
    except DatabaseError:
        return {}
