"""`manage.py revoke_api_key ID|PREFIX|KEY ... [--name NAME]`: revoke gateway API keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from resource_server_async.auth.api_keys import KEY_PREFIX, hash_key


def key_filter(reference: str) -> Q:
    """A key by database id, by its shown prefix (igw_xxxxxxxx), or by the whole key."""
    reference = reference.strip()
    if reference.isdigit():
        return Q(pk=int(reference))
    if reference.startswith(KEY_PREFIX) and len(reference) > 24:
        return Q(key_hash=hash_key(reference))
    if reference.startswith(KEY_PREFIX):
        return Q(prefix=reference)
    raise CommandError(
        f"{reference!r} is not a key id, a key prefix ({KEY_PREFIX}...) or a key; see list_api_keys"
    )


class Command(BaseCommand):
    help = (
        "Revoke gateway API keys. A revoked key stops working within API_KEY_CACHE_SECONDS "
        "(default 30 s)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "keys", nargs="*", help="key id, prefix (as list_api_keys shows it) or the key itself"
        )
        parser.add_argument("--name", help="revoke every key with this name")

    def handle(self, *args: Any, **options: Any) -> None:
        from resource_server_async.models import ApiKey

        if not options["keys"] and not options["name"]:
            raise CommandError("name at least one key (id, prefix or key) or use --name")
        query = Q(pk__in=[])
        for reference in options["keys"]:
            query |= key_filter(reference)
        if options["name"]:
            query |= Q(name=options["name"])
        matched = list(ApiKey.objects.filter(query).order_by("pk"))
        if not matched:
            raise CommandError("no API key matches; see list_api_keys")
        now = timezone.now()
        for key in matched:
            if key.revoked_at is not None:
                self.stdout.write(
                    f"Key {key.pk} ({key.name!r}, {key.prefix}) was already revoked "
                    f"at {key.revoked_at.isoformat()}."
                )
                continue
            key.revoked_at = now
            key.save(update_fields=["revoked_at"])
            self.stdout.write(f"Revoked key {key.pk} ({key.name!r}, {key.prefix}).")
