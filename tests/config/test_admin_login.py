"""Admin sign-in is throttled per client address (ADMIN_LOGIN_MAX_FAILURES per window)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

pytestmark = pytest.mark.django_db

PASSWORD = "a-correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def fresh_counts(settings: SettingsWrapper) -> Iterator[None]:
    settings.ADMIN_LOGIN_MAX_FAILURES = 3
    cache.clear()
    User.objects.create_superuser("operator", "op@example.org", PASSWORD)
    yield
    cache.clear()


def sign_in(password: str, address: str = "192.0.2.1") -> int:
    response = Client(REMOTE_ADDR=address).post(
        "/admin/login/?next=/admin/", {"username": "operator", "password": password}
    )
    return response.status_code  # 302 signed in, 200 the form again


def test_right_password_signs_in() -> None:
    assert sign_in(PASSWORD) == 302


def test_address_is_locked_after_the_allowed_failures() -> None:
    assert [sign_in("wrong") for _ in range(3)] == [200, 200, 200]
    # Even the right password is refused from this address until the window ends ...
    assert sign_in(PASSWORD) == 200
    # ... while another address is not affected, so an attacker cannot lock operators out.
    assert sign_in(PASSWORD, address="198.51.100.7") == 302


def test_lock_ends_with_the_window(settings: SettingsWrapper) -> None:
    settings.ADMIN_LOGIN_LOCKOUT_SECONDS = 60
    for _ in range(3):
        sign_in("wrong")
    assert sign_in(PASSWORD) == 200
    cache.delete("admin-login-failures:192.0.2.1")  # what the window's expiry does
    assert sign_in(PASSWORD) == 302


def test_a_success_clears_the_count() -> None:
    assert [sign_in("wrong"), sign_in("wrong"), sign_in(PASSWORD)] == [200, 200, 302]
    assert [sign_in("wrong"), sign_in("wrong"), sign_in(PASSWORD)] == [200, 200, 302]
