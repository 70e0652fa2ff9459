"""The dashboard's pages and data endpoints (every one behind access.operator_only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from resource_server_async.dashboard import globus_login, queries
from resource_server_async.dashboard.access import SIGNED_IN_BY, is_operator, operator_only
from resource_server_async.dashboard.live import cluster_states
from resource_server_async.dashboard.pages import CHARTS, PAGES
from resource_server_async.dashboard.ranges import RANGES, TimeRange, range_of

NAV = (
    ("overview", "Overview"),
    ("clusters", "Clusters"),
    ("models", "Models"),
    ("users", "Users and projects"),
    ("errors", "Errors"),
    ("batches", "Batches"),
)


def _page(request: HttpRequest, page: str, extra: dict[str, Any] | None = None) -> HttpResponse:
    span = range_of(request.GET.get("range"))
    charts = [CHARTS[chart_id](span) for chart_id in PAGES[page]]
    context = {
        "page": page,
        "nav": NAV,
        "span": span,
        "ranges": RANGES.values(),
        "charts": charts,
        "refresh_seconds": settings.DASHBOARD_REFRESH_SECONDS,
        **(extra or {}),
    }
    return render(request, f"dashboard/{page}.html", context)


@require_GET
@operator_only()
def overview(request: HttpRequest) -> HttpResponse:
    return _page(request, "overview")


@require_GET
@operator_only()
def clusters(request: HttpRequest) -> HttpResponse:
    return _page(request, "clusters")


@require_GET
@operator_only()
def models(request: HttpRequest) -> HttpResponse:
    from resource_server_async.dashboard.catalog_view import served_models

    return _page(request, "models", {"served": served_models()})


@require_GET
@operator_only()
def users(request: HttpRequest) -> HttpResponse:
    from resource_server_async.dashboard.allocations import allocation_rows

    span = range_of(request.GET.get("range"))
    username = request.GET.get("user", "")[:250]
    extra = {
        "allocations": allocation_rows(),
        "selected_user": username,
        "recent": queries.recent(span, username=username) if username else [],
    }
    return _page(request, "users", extra)


@require_GET
@operator_only()
def errors(request: HttpRequest) -> HttpResponse:
    span = range_of(request.GET.get("range"))
    return _page(request, "errors", {"recent": queries.recent(span, failed=True)})


@require_GET
@operator_only()
def batches(request: HttpRequest) -> HttpResponse:
    from resource_server_async.models import Batch

    limit = settings.DASHBOARD_RECENT_ROWS
    active = ("validating", "in_progress", "finalizing", "cancelling")
    rows: list[Any] = list(
        Batch.objects.order_by("-created_at").values(
            "id", "principal_id", "endpoint", "status", "created_at", "total", "completed", "failed"
        )[:limit]
    )
    for row in rows:  # plain dicts: a page's rows gain two fields
        row["active"] = row["status"] in active
        done = row["completed"] + row["failed"]
        row["progress"] = round(100 * done / row["total"]) if row["total"] else 0
    return _page(request, "batches", {"batches": rows})


def _chart(request: HttpRequest, chart_id: str) -> tuple[TimeRange, Any]:
    build = CHARTS.get(chart_id)
    if build is None:
        raise Http404("no such chart")
    span = range_of(request.GET.get("range"))
    return span, build(span)


@require_GET
@operator_only(data=True)
def chart_json(request: HttpRequest, chart_id: str) -> HttpResponse:
    span, chart = _chart(request, chart_id)
    return JsonResponse({"range": span.key, **chart.as_json(), "totals": chart.totals()})


@require_GET
@operator_only(data=True)
def chart_csv(request: HttpRequest, chart_id: str) -> HttpResponse:
    span, chart = _chart(request, chart_id)
    response = HttpResponse(chart.as_csv(), content_type="text/csv; charset=utf-8")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M")
    name = f"{chart_id}-{span.key}-{stamp}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@operator_only(data=True)
def clusters_json(request: HttpRequest) -> HttpResponse:
    # Django runs this view in a thread; the catalog's live states live on the server's loop.
    states = async_to_sync(cluster_states)()
    return JsonResponse({"at": timezone.now().isoformat(), "clusters": states})


# --- sign-in ------------------------------------------------------------------------------------


def _next_path(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return wanted if safe and wanted.startswith("/dashboard/") else reverse("dashboard:overview")


@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    """The one sign-in page: the staff form and, where Globus is configured, its button."""
    if request.method == "GET" and is_operator(request):
        return HttpResponseRedirect(_next_path(request))
    form = AuthenticationForm(request, data=request.POST if request.method == "POST" else None)
    error = ""
    status = 200
    if request.method == "POST":
        if form.is_valid():
            user = form.get_user()
            if user.is_staff:
                login(request, user)
                request.session[SIGNED_IN_BY] = "staff"
                return HttpResponseRedirect(_next_path(request))
            error = "This account is not a staff account."
        status = 403 if form.is_valid() else 400
    context = {
        "form": form,
        "error": error,
        "next": _next_path(request),
        "globus": globus_login.configured(),
    }
    return render(request, "dashboard/login.html", context, status=status)


@require_GET
def globus_start(request: HttpRequest) -> HttpResponse:
    if not globus_login.configured():
        raise Http404("Globus sign-in is not configured")
    return HttpResponseRedirect(globus_login.authorize_url(request, _next_path(request)))


@require_GET
def globus_callback(request: HttpRequest) -> HttpResponse:
    if not globus_login.configured():
        raise Http404("Globus sign-in is not configured")
    try:
        return HttpResponseRedirect(globus_login.finish(request))
    except globus_login.SignInRefused as refused:
        context = {
            "form": AuthenticationForm(request),
            "error": str(refused),
            "next": reverse("dashboard:overview"),
            "globus": True,
        }
        return render(request, "dashboard/login.html", context, status=403)


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    logout(request)
    return HttpResponseRedirect(reverse("dashboard:login"))
