"""Admin sign-in throttling: failed attempts counted per client address in the shared cache."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

logger = logging.getLogger(__name__)


class ThrottledModelBackend(ModelBackend):
    """Django's own user check, refused for ADMIN_LOGIN_LOCKOUT_SECONDS once an address has
    failed ADMIN_LOGIN_MAX_FAILURES times in that window (counted from its first failure).

    Keyed by address, not by user name: counting per user name would let anyone lock the
    operators out. Behind the proxy, uvicorn's --proxy-headers makes the address the caller's.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        key = _failures_key(request)
        if key is not None and cache.get(key, 0) >= settings.ADMIN_LOGIN_MAX_FAILURES:
            # PermissionDenied stops authenticate() at once: no other backend, no password hash.
            raise PermissionDenied("too many failed sign-ins from this address")
        user = super().authenticate(request, username, password, **kwargs)
        if key is not None:
            if user is None:
                _count_failure(key)
            else:
                cache.delete(key)
        return user


def _failures_key(request: HttpRequest | None) -> str | None:
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    return f"admin-login-failures:{address}" if address else None


def _count_failure(key: str) -> None:
    cache.add(key, 0, timeout=settings.ADMIN_LOGIN_LOCKOUT_SECONDS)
    try:
        failures = cache.incr(key)
    except ValueError:  # expired between add and incr: this failure starts a new window
        cache.set(key, 1, timeout=settings.ADMIN_LOGIN_LOCKOUT_SECONDS)
        failures = 1
    if failures == settings.ADMIN_LOGIN_MAX_FAILURES:
        logger.warning(
            "admin sign-in locked for %ds after %d failures from %s",
            settings.ADMIN_LOGIN_LOCKOUT_SECONDS,
            failures,
            key.rpartition(":")[2],
        )
