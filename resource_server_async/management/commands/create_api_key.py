"""`manage.py create_api_key --name NAME [--groups G ...] [--domain D] [--expires WHEN]
[--operator]`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from resource_server_async.auth.api_keys import create_key

_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str) -> datetime:
    """An ISO date/time, or a duration from now such as 30d, 12h, 90m, 2w."""
    text = text.strip()
    unit = _UNITS.get(text[-1:].lower())
    if unit and text[:-1].isdigit():
        return timezone.now() + timedelta(**{unit: int(text[:-1])})
    value = parse_datetime(text) or parse_datetime(text + "T00:00:00")
    if value is None:
        raise CommandError(
            f"--expires {text!r}: use an ISO date (2027-01-31) or a duration (30d, 12h)"
        )
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value


class Command(BaseCommand):
    help = "Create a gateway API key and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="who or what uses the key")
        parser.add_argument(
            "--groups", nargs="*", default=[], help="Globus group ids the key acts in"
        )
        parser.add_argument(
            "--domain", default="", help="identity-provider domain the key counts as"
        )
        parser.add_argument("--expires", help="ISO date/time or a duration from now (30d, 12h)")
        parser.add_argument(
            "--operator",
            action="store_true",
            help="the key may read every principal's usage (GET /v1/usage)",
        )
        parser.add_argument("--quiet", action="store_true", help="print only the key")

    def handle(self, *args: Any, **options: Any) -> None:
        expires = parse_expiry(options["expires"]) if options["expires"] else None
        if expires is not None and expires <= timezone.now():
            raise CommandError("--expires is in the past")
        groups = [g for item in options["groups"] for g in item.replace(";", ",").split(",") if g]
        key, pk = create_key(
            options["name"], groups, options["domain"], expires, operator=options["operator"]
        )
        if options["quiet"]:
            self.stdout.write(key)
            return
        self.stdout.write(
            f"Created API key {pk} for {options['name']!r}"
            + (f", expires {expires.isoformat()}" if expires else ", no expiry")
            + "."
        )
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(key)
