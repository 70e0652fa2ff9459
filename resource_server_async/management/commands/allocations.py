"""`manage.py allocations list | set NAME --project P ... | spent [NAME] | delete NAME |
project NAME ...`: the operator's view of project budgets (docs/limits.md)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Model

from resource_server_async.accounting.usage import allocation_usage
from resource_server_async.admission.allocation_ledger import RedisLedger, Spent
from resource_server_async.admission.allocation_periods import account_for
from resource_server_async.admission.allocations import describe
from resource_server_async.admission.redis_scripts import RedisScripts
from resource_server_async.catalog.projects import AllocationRule, allocation_rule
from resource_server_async.models import Allocation, ApiKey, Project


def _live(rules: list[AllocationRule], now: datetime) -> list[Spent | None]:
    """What admission counts now (Redis), or None each without Redis: the records then."""
    if not settings.REDIS_URL or not rules:
        return [None] * len(rules)
    keys = [account_for(r, now, settings.ALLOCATIONS_REDIS_PREFIX).key for r in rules]

    async def read() -> list[Spent | None]:
        calls = RedisScripts(settings.REDIS_URL, timeout=settings.LIMITS_REDIS_TIMEOUT, pending=1)
        try:
            return await RedisLedger(calls).read(keys)
        finally:
            await calls.close()

    return asyncio.run(read())


def _save(row: Model) -> None:
    """Checked as the admin checks it; a bad value is the operator's error, not a traceback."""
    try:
        row.full_clean()
    except ValidationError as exc:
        raise CommandError("; ".join(exc.messages)) from None
    row.save()


class Command(BaseCommand):
    help = (
        "List, set and delete project allocations (token and GPU-second budgets per period), "
        "show what each spent in its current period, and set a project's members."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="every allocation and its budget")
        spent = sub.add_parser("spent", help="spent and remaining in the current period")
        spent.add_argument("name", nargs="?", default="", help="one allocation (default: all)")
        spent.add_argument("--json", action="store_true", help="as JSON")
        put = sub.add_parser("set", help="create or change an allocation")
        put.add_argument("name")
        put.add_argument("--project", help="the project's name (required for a new one)")
        put.add_argument("--tokens", type=int, help="tokens per period (-1: none)")
        put.add_argument("--gpu-seconds", type=int, help="GPU-seconds per period (-1: none)")
        put.add_argument("--period", choices=("month", "week", "day"))
        put.add_argument("--start-day", type=int, help="month: 1-28; week: 1 = Monday .. 7")
        put.add_argument("--model", help="only this model ('' for every model)")
        put.add_argument("--cluster", help="only this cluster ('' for every cluster)")
        delete = sub.add_parser("delete", help="delete an allocation")
        delete.add_argument("name")
        project = sub.add_parser("project", help="create or change a project and its members")
        project.add_argument("name")
        project.add_argument("--title")
        project.add_argument("--group", help="members: this Globus group id")
        project.add_argument("--key", action="append", default=[], help="a member API key (name)")
        project.add_argument(
            "--default-for", action="append", default=[], help="an API key (name) charged here"
        )
        project.add_argument("--order", type=int, help="lower comes first (default 100)")
        project.add_argument("--weight", type=int, help="fair-share weight (default 1)")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, "_" + options["action"])(options)

    def _list(self, options: dict[str, Any]) -> None:
        for allocation in Allocation.objects.select_related("project"):
            rule = allocation_rule(allocation)
            self.stdout.write(f"{rule.name}  project {rule.project}: {describe(rule)}")

    def _spent(self, options: dict[str, Any]) -> None:
        found = Allocation.objects.select_related("project")
        if options["name"]:
            found = found.filter(name=options["name"])
            if not found.exists():
                raise CommandError(f"There is no allocation {options['name']!r}.")
        rules = [allocation_rule(a) for a in found]
        now = datetime.now(UTC)
        reports = [
            allocation_usage(rule, now, live)
            for rule, live in zip(rules, _live(rules, now), strict=True)
        ]
        if options["json"]:
            self.stdout.write(json.dumps(reports, indent=2))
            return
        for report in reports:
            parts = [
                f"{kind} {b['spent']:,} of {b['budget']:,} ({b['remaining']:,} left)"
                for kind in ("tokens", "gpu_seconds")
                if (b := report[kind]) is not None
            ]
            self.stdout.write(
                f"{report['allocation']}  project {report['project']}: {'; '.join(parts)}; "
                f"renews {report['renews_at']}"
            )

    def _set(self, options: dict[str, Any]) -> None:
        allocation = Allocation.objects.filter(name=options["name"]).first()
        if allocation is None:
            if not options["project"]:
                raise CommandError("A new allocation needs --project.")
            allocation = Allocation(name=options["name"])
        if options["project"]:
            project = Project.objects.filter(name=options["project"]).first()
            if project is None:
                raise CommandError(
                    f"There is no project {options['project']!r}; make it with "
                    "`allocations project NAME` or in the admin."
                )
            allocation.project = project
        for field in ("tokens", "gpu_seconds"):
            if options[field] is not None:
                setattr(allocation, field, None if options[field] < 0 else options[field])
        for field in ("period", "start_day", "model", "cluster"):
            if options[field] is not None:
                setattr(allocation, field, options[field])
        _save(allocation)
        self.stdout.write(f"{allocation.name}: {describe(allocation_rule(allocation))}")

    def _delete(self, options: dict[str, Any]) -> None:
        deleted, _ = Allocation.objects.filter(name=options["name"]).delete()
        if not deleted:
            raise CommandError(f"There is no allocation {options['name']!r}.")
        self.stdout.write(f"deleted {options['name']}")

    def _project(self, options: dict[str, Any]) -> None:
        project = Project.objects.filter(name=options["name"]).first() or Project(
            name=options["name"]
        )
        for field, option in (("title", "title"), ("globus_group", "group")):
            if options[option] is not None:
                setattr(project, field, options[option])
        for field in ("order", "weight"):
            if options[field] is not None:
                setattr(project, field, options[field])
        _save(project)
        for name in options["key"]:
            project.api_keys.add(self._key(name))
        for name in options["default_for"]:
            key = self._key(name)
            key.default_project = project
            key.save(update_fields=["default_project"])
        self.stdout.write(f"project {project.name}")

    @staticmethod
    def _key(name: str) -> ApiKey:
        keys = list(ApiKey.objects.filter(name=name, revoked_at__isnull=True)[:2])
        if len(keys) != 1:
            raise CommandError(f"{len(keys) or 'No'} active API keys are named {name!r}.")
        return keys[0]
