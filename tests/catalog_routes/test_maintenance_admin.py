"""Maintenance windows in the admin: added as rows (bumping the catalog's version), and ended
now by an action; a window must end after it starts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from resource_server_async.catalog.version import current_version
from resource_server_async.models import MaintenanceWindow

pytestmark = pytest.mark.django_db

ADD = "/admin/resource_server_async/maintenancewindow/add/"


def window_form(start: datetime, end: datetime | None) -> dict[str, str]:
    """The admin's add form: a date and a time field for each moment (UTC)."""
    fields = {"cluster": "sophia", "framework": "", "endpoint_slug": "", "message": "upgrade"}
    for name, moment in (("starts_at", start), ("ends_at", end)):
        if moment is not None:
            fields[f"{name}_0"] = moment.strftime("%Y-%m-%d")
            fields[f"{name}_1"] = moment.strftime("%H:%M:%S")
    return fields


def test_a_window_added_in_the_admin_is_a_row_and_a_new_version(admin_client: Client) -> None:
    before = current_version()
    now = timezone.now()
    response = admin_client.post(ADD, window_form(now, now + timedelta(hours=2)))

    assert response.status_code == 302, response.content[:2000]
    window = MaintenanceWindow.objects.get()
    assert window.message == "upgrade"
    assert current_version() != before


def test_a_window_that_ends_before_it_starts_is_refused(admin_client: Client) -> None:
    now = timezone.now()
    response = admin_client.post(ADD, window_form(now, now - timedelta(hours=1)))

    assert response.status_code == 200, "the form comes back with the error"
    assert not MaintenanceWindow.objects.exists()


def test_the_end_now_action_ends_windows_in_force_only(admin_client: Client) -> None:
    now = timezone.now()
    hour = timedelta(hours=1)
    in_force = MaintenanceWindow.objects.create(cluster="sophia", starts_at=now - hour)
    to_come = MaintenanceWindow.objects.create(cluster="sophia", starts_at=now + hour)

    response = admin_client.post(
        "/admin/resource_server_async/maintenancewindow/",
        {"action": "end_now", "_selected_action": [in_force.pk, to_come.pk]},
    )

    assert response.status_code == 302
    in_force.refresh_from_db()
    to_come.refresh_from_db()
    assert in_force.ends_at is not None and in_force.ends_at <= timezone.now()
    assert to_come.ends_at is None
