"""`manage.py usage_report --since DAY --until DAY --by user|group|model|cluster|day
[--format table|csv|json]`: usage sums from the request records, for reports and chargeback."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from resource_server_async.accounting import usage


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not an ISO date (2026-11-30)") from None


class Command(BaseCommand):
    help = (
        "Sum requests, tokens and errors from the request records over whole UTC days "
        "(--since and --until both included), by user, group, model, cluster and/or day. "
        "The same numbers as GET /resource_server/v1/usage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, type=_day, help="first day (ISO date)")
        parser.add_argument(
            "--until", type=_day, help="last day, included (ISO date; default today, UTC)"
        )
        parser.add_argument(
            "--by",
            action="append",
            choices=usage.DIMENSIONS,
            help="sum by this; repeat for several (default: user)",
        )
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
        parser.add_argument("--principal", default=usage.ALL_PRINCIPALS, help="one principal id")
        parser.add_argument("--group", default="", help="only records of this group")
        parser.add_argument("--cluster", default="")
        parser.add_argument("--model", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        until = options["until"] or datetime.now(UTC).date()
        if options["since"] > until:
            raise CommandError("--since is after --until")
        by = tuple(dict.fromkeys(options["by"] or ["user"]))
        query = usage.UsageQuery(
            start=options["since"],
            end=until,
            by=by,
            principal_id=options["principal"],
            group=options["group"],
            cluster=options["cluster"],
            model=options["model"],
        )
        rows = [row.as_dict() for row in usage.summarize(query)]
        total = usage.totals(query)
        if options["format"] == "json":
            document = {
                "since": query.start.isoformat(),
                "until": query.end.isoformat(),
                "by": list(by),
                "data": rows,
                "total": total,
            }
            self.stdout.write(json.dumps(document, indent=2))
            return
        columns = [*by, *(["username"] if "user" in by else []), *usage.FIELDS]
        if options["format"] == "csv":
            writer = csv.DictWriter(self.stdout, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            return
        self._table(columns, rows, total)

    def _table(self, columns: list[str], rows: list[dict[str, Any]], total: dict[str, int]) -> None:
        # The total row: each record once (a record in two groups is in both group rows).
        last: dict[str, Any] = dict.fromkeys(columns, "") | total
        last[columns[0]] = "total"
        cells = [[str(row.get(c, "")) for c in columns] for row in [*rows, last]]
        widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
        numeric = set(usage.FIELDS)

        def line(values: list[str]) -> str:
            return "  ".join(
                v.rjust(w) if c in numeric else v.ljust(w)
                for v, w, c in zip(values, widths, columns, strict=True)
            ).rstrip()

        self.stdout.write(line(columns))
        self.stdout.write(line(["-" * w for w in widths]))
        for values in cells[:-1]:
            self.stdout.write(line(values))
        self.stdout.write(line(["-" * w for w in widths]))
        self.stdout.write(line(cells[-1]))
