"""Who may reach the dashboard: every page and data endpoint refuses strangers and non-operators;
staff sign in through the one sign-in page; the answers carry the CSP and CSRF protection."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from resource_server_async.dashboard.pages import CHARTS
from resource_server_async.dashboard.security import POLICY

PAGES = ["overview", "clusters", "models", "users", "errors", "batches"]
DATA = [f"/dashboard/data/{chart}.{kind}" for chart in CHARTS for kind in ("json", "csv")] + [
    "/dashboard/data/clusters.json"
]
pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    get_user_model().objects.create_user("ops", password="ops-password-1", is_staff=True)
    client = Client()
    answer = client.post("/dashboard/login/", {"username": "ops", "password": "ops-password-1"})
    assert answer.status_code == 302
    return client


def test_strangers_go_to_sign_in_from_every_page() -> None:
    client = Client()
    for page in PAGES:
        url = reverse(f"dashboard:{page}")
        answer = client.get(url)
        assert answer.status_code == 302, page
        assert answer["Location"].startswith("/dashboard/login/?next=")


def test_strangers_are_refused_every_data_endpoint() -> None:
    client = Client()
    for url in DATA:
        answer = client.get(url)
        assert answer.status_code == 401, url
        assert "sign in" in answer.json()["error"]


def test_non_staff_cannot_sign_in_nor_see_anything() -> None:
    get_user_model().objects.create_user("plain", password="plain-password-1")
    client = Client()
    answer = client.post("/dashboard/login/", {"username": "plain", "password": "plain-password-1"})
    assert answer.status_code == 403
    assert b"not a staff account" in answer.content
    # Signed in elsewhere (the admin's session of a non-staff user): still refused here.
    client.login(username="plain", password="plain-password-1")
    for page in PAGES:
        assert client.get(reverse(f"dashboard:{page}")).status_code == 403, page
    for url in DATA:
        assert client.get(url).status_code == 403, url


def test_admin_session_of_staff_is_not_a_dashboard_sign_in() -> None:
    """Only the dashboard's sign-in says how an operator came in; a session made elsewhere
    (e.g. Django's test login) is refused until the operator signs in here."""
    get_user_model().objects.create_user("ops2", password="ops-password-2", is_staff=True)
    client = Client()
    client.login(username="ops2", password="ops-password-2")
    assert client.get("/dashboard/").status_code == 403


def test_wrong_password_is_a_clear_400() -> None:
    get_user_model().objects.create_user("ops3", password="ops-password-3", is_staff=True)
    answer = Client().post("/dashboard/login/", {"username": "ops3", "password": "nope"})
    assert answer.status_code == 400
    assert b"enter a correct username and password" in answer.content.lower()


def test_staff_see_every_page_and_data_endpoint(staff: Client) -> None:
    for page in PAGES:
        answer = staff.get(reverse(f"dashboard:{page}"))
        assert answer.status_code == 200, page
        assert answer["Content-Security-Policy"] == POLICY
        assert "script-src 'self'" in POLICY and "unsafe-inline" not in POLICY
        assert b"<script>" not in answer.content  # only src= scripts and JSON data blocks
    for url in DATA:
        assert staff.get(url).status_code == 200, url


def test_sign_in_needs_the_csrf_token() -> None:
    get_user_model().objects.create_user("ops4", password="ops-password-4", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    answer = client.post("/dashboard/login/", {"username": "ops4", "password": "ops-password-4"})
    assert answer.status_code == 403
    page = client.get("/dashboard/login/")
    token = page.cookies["csrftoken"].value
    answer = client.post(
        "/dashboard/login/",
        {"username": "ops4", "password": "ops-password-4", "csrfmiddlewaretoken": token},
    )
    assert answer.status_code == 302


def test_sign_out_is_a_post(staff: Client) -> None:
    assert staff.get("/dashboard/logout/").status_code == 405
    assert staff.post("/dashboard/logout/").status_code == 302
    assert staff.get("/dashboard/").status_code == 302


def test_next_must_stay_on_the_dashboard() -> None:
    get_user_model().objects.create_user("ops5", password="ops-password-5", is_staff=True)
    answer = Client().post(
        "/dashboard/login/",
        {"username": "ops5", "password": "ops-password-5", "next": "https://evil.example/"},
    )
    assert answer["Location"] == "/dashboard/"


def test_globus_button_only_where_configured() -> None:
    assert b"globus-login" not in Client().get("/dashboard/login/").content
    assert Client().get("/dashboard/login/globus/").status_code == 404


def test_sign_in_is_throttled_per_address(settings: Any) -> None:
    """The dashboard's form goes through the same throttled backend as the admin's."""
    cache.clear()
    settings.ADMIN_LOGIN_MAX_FAILURES = 3
    get_user_model().objects.create_user("ops6", password="ops-password-6", is_staff=True)
    client = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(3):
        client.post("/dashboard/login/", {"username": "ops6", "password": "wrong"})
    right = {"username": "ops6", "password": "ops-password-6"}
    assert client.post("/dashboard/login/", right).status_code == 400  # locked out
    assert Client(REMOTE_ADDR="198.51.100.8").post("/dashboard/login/", right).status_code == 302
    cache.clear()
