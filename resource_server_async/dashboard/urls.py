"""The dashboard's URLs, included under /dashboard/ by inference_gateway/urls.py."""

from django.urls import path, re_path

from resource_server_async.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("clusters/", views.clusters, name="clusters"),
    path("models/", views.models, name="models"),
    path("users/", views.users, name="users"),
    path("errors/", views.errors, name="errors"),
    path("batches/", views.batches, name="batches"),
    path("data/clusters.json", views.clusters_json, name="clusters_json"),
    re_path(r"^data/(?P<chart_id>[a-z_]+)\.json$", views.chart_json, name="chart_json"),
    re_path(r"^data/(?P<chart_id>[a-z_]+)\.csv$", views.chart_csv, name="chart_csv"),
    path("login/", views.sign_in, name="login"),
    path("login/globus/", views.globus_start, name="globus_start"),
    path("login/globus/callback/", views.globus_callback, name="globus_callback"),
    path("logout/", views.sign_out, name="logout"),
]
