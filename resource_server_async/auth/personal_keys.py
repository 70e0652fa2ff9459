"""Personal API keys in the database: create (bounded per owner), list and revoke one's own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from resource_server_async.auth.api_keys import PREFIX_SHOWN, generate_key, hash_key
from resource_server_async.auth.principal import Principal
from resource_server_async.errors import GatewayError
from resource_server_async.models import ApiKey

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DEFAULT_DAYS = 30
MAX_NAME = 150
MAX_SCOPE_ITEMS = 100


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """A checked POST /resource_server/v1/keys body."""

    name: str
    lifetime: timedelta
    models: list[str]
    clusters: list[str]


def _bad(message: str, param: str) -> GatewayError:
    return GatewayError(400, "invalid_request", message, param=param)


def _names(body: dict[str, Any], field: str) -> list[str]:
    value = body.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _bad(f"{field!r} must be a list of non-empty strings.", field)
    if len(value) > MAX_SCOPE_ITEMS:
        raise _bad(f"{field!r} may name at most {MAX_SCOPE_ITEMS} entries.", field)
    return sorted({v.strip() for v in value})


def parse_lifetime(text: str) -> timedelta:
    """A duration such as 30d, 12h, 90m or 2w, at most PERSONAL_KEY_MAX_DAYS."""
    match = _DURATION.match(text)
    if match is None:
        raise _bad(f"'expires' {text!r}: use a duration such as 30d, 12h or 2w.", "expires")
    lifetime = timedelta(**{_UNITS[match[2]]: int(match[1])})
    limit = timedelta(days=settings.PERSONAL_KEY_MAX_DAYS)
    if lifetime > limit or lifetime <= timedelta(0):
        raise _bad(
            f"'expires' {text!r}: a personal key lives at most {settings.PERSONAL_KEY_MAX_DAYS} "
            "days on this gateway (PERSONAL_KEY_MAX_DAYS), and more than zero.",
            "expires",
        )
    return lifetime


def key_request(body: dict[str, Any]) -> KeyRequest:
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise _bad(f"'name' must be a string of at most {MAX_NAME} characters.", "name")
    expires = body.get("expires", f"{min(DEFAULT_DAYS, settings.PERSONAL_KEY_MAX_DAYS)}d")
    if not isinstance(expires, str):
        raise _bad("'expires' must be a duration string such as '30d'.", "expires")
    unknown = sorted(set(body) - {"name", "expires", "models", "clusters"})
    if unknown:
        raise _bad(f"Unknown field(s): {', '.join(unknown)}.", unknown[0])
    return KeyRequest(
        name=name.strip() or "personal key",
        lifetime=parse_lifetime(expires),
        models=_names(body, "models"),
        clusters=_names(body, "clusters"),
    )


def describe(row: ApiKey, now: datetime | None = None) -> dict[str, Any]:
    """A key as its owner (or an operator) sees it: never the key itself."""
    now = now or timezone.now()
    status = "active"
    if row.revoked_at is not None:
        status = "revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        status = "expired"
    return {
        "id": row.pk,
        "name": row.name,
        "prefix": row.prefix,
        "status": status,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
        "models": list(row.scope_models),
        "clusters": list(row.scope_clusters),
    }


def _active(owner_id: str) -> Any:
    now = timezone.now()
    return ApiKey.objects.filter(owner_id=owner_id, revoked_at__isnull=True).exclude(
        expires_at__lte=now
    )


def _serialize_owner(owner_id: str) -> None:
    """One key creation per owner at a time, so two concurrent requests cannot both pass the
    bound: a transaction-scoped advisory lock on PostgreSQL (SQLite, for development, takes its
    database-wide write lock at the insert)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["igw-keys:" + owner_id])


def create(owner: Principal, wanted: KeyRequest, sealed_groups_token: str) -> dict[str, Any]:
    """A new key of `owner`; 409 past PERSONAL_KEYS_PER_OWNER active keys. Shows the key once."""
    key = generate_key()
    with transaction.atomic():
        _serialize_owner(owner.id)
        held = list(_active(owner.id).values_list("pk", flat=True))
        if len(held) >= settings.PERSONAL_KEYS_PER_OWNER:
            raise GatewayError(
                409,
                "too_many_keys",
                f"You already hold {len(held)} active personal keys, the most this gateway "
                f"allows (PERSONAL_KEYS_PER_OWNER={settings.PERSONAL_KEYS_PER_OWNER}). Revoke "
                "one (igw keys revoke ID) first.",
            )
        row = ApiKey.objects.create(
            name=wanted.name,
            prefix=key[:PREFIX_SHOWN],
            key_hash=hash_key(key),
            checksummed=True,
            groups=sorted(owner.groups),
            domain=owner.idp_domain,
            expires_at=timezone.now() + wanted.lifetime,
            owner_id=owner.id,
            owner_username=owner.username,
            owner_name=owner.name,
            owner_groups_token=sealed_groups_token,
            scope_models=wanted.models,
            scope_clusters=wanted.clusters,
        )
    return {**describe(row), "key": key}


def owned(owner_id: str) -> list[dict[str, Any]]:
    now = timezone.now()
    return [describe(row, now) for row in ApiKey.objects.filter(owner_id=owner_id)]


def revoke(owner_id: str, key_id: int) -> tuple[dict[str, Any], str, str] | None:
    """Revoke the owner's key `key_id`: (its description, its hash, the sealed Groups token to
    revoke at Globus), or None when the owner has no such key."""
    with transaction.atomic():
        row = ApiKey.objects.select_for_update().filter(owner_id=owner_id, pk=key_id).first()
        if row is None:
            return None
        sealed = row.owner_groups_token
        if row.revoked_at is None:
            row.revoked_at = timezone.now()
        # The grant is of no further use: it is revoked at Globus and forgotten here.
        row.owner_groups_token = ""
        row.save(update_fields=["revoked_at", "owner_groups_token"])
    return describe(row), row.key_hash, sealed
