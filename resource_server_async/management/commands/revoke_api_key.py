"""`manage.py revoke_api_key ID|PREFIX|KEY ... [--name NAME] [--owner USERNAME]`: revoke gateway
API keys (--owner: every personal key of a researcher, e.g. one who left)."""

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


def _revoke_grant(sealed: str) -> None:
    """A personal key's Groups grant, revoked at Globus (best effort: the row forgot it)."""
    from resource_server_async.auth import globus_api, key_owners

    token = key_owners.unseal(sealed)
    if not token:
        return
    try:
        globus_api.revoke(key_owners.globus_settings(), token)
    except Exception as exc:  # Globus may be unreachable; the key is revoked regardless
        print(f"note: the key's Globus grant could not be revoked at Globus ({exc})")


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
        parser.add_argument("--owner", help="revoke every personal key of this username")

    def handle(self, *args: Any, **options: Any) -> None:
        from resource_server_async.models import ApiKey

        if not options["keys"] and not options["name"] and not options["owner"]:
            raise CommandError("name at least one key (id, prefix or key) or use --name/--owner")
        query = Q(pk__in=[])
        for reference in options["keys"]:
            query |= key_filter(reference)
        if options["name"]:
            query |= Q(name=options["name"])
        if options["owner"]:
            query |= Q(owner_username=options["owner"])
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
            sealed, key.owner_groups_token = key.owner_groups_token, ""
            key.save(update_fields=["revoked_at", "owner_groups_token"])
            _revoke_grant(sealed)
            self.stdout.write(f"Revoked key {key.pk} ({key.name!r}, {key.prefix}).")
