"""`manage.py list_api_keys [--active] [--owner USERNAME] [--json]`: the gateway's API keys
(never the keys); OWNER is the researcher of a personal key, "-" for an operator's key.

FORMAT tells keys with a checksum from legacy keys issued before it (API_KEY_ACCEPT_LEGACY).
"""

from __future__ import annotations

from typing import Any

import orjson
from django.core.management.base import BaseCommand, CommandParser


def key_status(key: Any) -> str:
    if key.revoked_at is not None:
        return "revoked"
    return "active" if key.is_active else "expired"


class Command(BaseCommand):
    help = "List gateway API keys: id, name, prefix, status, format, groups, domain, dates."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--active", action="store_true", help="only keys that still work")
        parser.add_argument("--owner", help="only the personal keys of this username")
        parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")

    def handle(self, *args: Any, **options: Any) -> None:
        from resource_server_async.models import ApiKey

        rows: list[dict[str, Any]] = []
        keys = ApiKey.objects.order_by("pk")
        if options["owner"]:
            keys = keys.filter(owner_username=options["owner"])
        for key in keys:
            status = key_status(key)
            if options["active"] and status != "active":
                continue
            rows.append(
                {
                    "id": key.pk,
                    "name": key.name,
                    "prefix": key.prefix,
                    "status": status,
                    "owner": key.owner_username or None,
                    "owner_id": key.owner_id or None,
                    "models": list(key.scope_models),
                    "clusters": list(key.scope_clusters),
                    "format": "checksummed" if key.checksummed else "legacy",
                    "groups": list(key.groups),
                    "domain": key.domain,
                    "created_at": key.created_at.isoformat(),
                    "expires_at": key.expires_at.isoformat() if key.expires_at else None,
                    "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                }
            )
        if options["json"]:
            self.stdout.write(orjson.dumps(rows).decode())
            return
        if not rows:
            self.stdout.write("No API keys." if not options["active"] else "No active API keys.")
            return
        header = [
            "ID",
            "NAME",
            "PREFIX",
            "STATUS",
            "OWNER",
            "FORMAT",
            "GROUPS",
            "DOMAIN",
            "CREATED",
            "EXPIRES",
        ]
        table = [header] + [
            [
                str(r["id"]),
                r["name"],
                r["prefix"],
                r["status"],
                r["owner"] or "-",
                r["format"],
                ",".join(r["groups"]) or "-",
                r["domain"] or "-",
                r["created_at"][:19],
                (r["expires_at"] or "never")[:19],
            ]
            for r in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        for line in table:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
            )
