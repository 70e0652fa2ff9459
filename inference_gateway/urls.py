"""Django URLs: the admin and the operator dashboard; the API is served by
resource_server_async.api.app."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dashboard/", include("resource_server_async.dashboard.urls")),
]
