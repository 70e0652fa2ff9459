"""Django URLs: only the admin; the API is served by resource_server_async.api.app."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
