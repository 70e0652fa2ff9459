"""Who may see the dashboard: Django staff, or a Globus user of DASHBOARD_OPERATOR_GROUPS
signed in through globus_login; every page and data endpoint goes through `operator_only`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse

# The session key saying how an operator signed in ("staff" or "globus").
SIGNED_IN_BY = "dashboard_signed_in_by"


def is_operator(request: HttpRequest) -> bool:
    user = request.user
    if not (user.is_authenticated and user.is_active):
        return False
    via = request.session.get(SIGNED_IN_BY)
    return via == "globus" or bool(via == "staff" and user.is_staff)


def operator_only(*, data: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Pages send strangers to the sign-in page; data endpoints answer 401/403 (no redirect a
    script would follow)."""

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if is_operator(request):
                answer: HttpResponse = view(request, *args, **kwargs)
                return answer
            signed_in = request.user.is_authenticated
            if data:
                status = 403 if signed_in else 401
                return JsonResponse(
                    {"error": "operators only: sign in at /dashboard/login/"}, status=status
                )
            if signed_in:
                return HttpResponse("Operators only.", status=403, content_type="text/plain")
            login = reverse("dashboard:login")
            return HttpResponseRedirect(f"{login}?{urlencode({'next': request.get_full_path()})}")

        return guarded

    return wrap
