"""The two login pages, the portal's and the admin's, behind one lockout (portal/throttle.py).

Both are Django's LoginView (the admin builds its own inside AdminSite.login), so the lockout
wraps the view rather than subclassing it: one decorator serves both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils.decorators import method_decorator

from portal import throttle

View = Callable[..., HttpResponseBase]


def throttled_login(view: View) -> View:
    """Refuse a locked-out account or address before the password is checked; then count
    what the form says happened."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = request.POST.get("username", "")
        address = throttle.client_address(request.META.get("REMOTE_ADDR"))
        if wait := throttle.login_wait(username, address):
            return locked_out(request, wait)
        response = view(request, *args, **kwargs)
        # LoginView answers a rejected form with the page and the form in its context, and a
        # login with a redirect.
        form = (getattr(response, "context_data", None) or {}).get("form")
        if form is None:
            if request.user.is_authenticated:
                throttle.login_succeeded(username)
        elif form.has_error(NON_FIELD_ERRORS, "invalid_login") and form.get_user() is None:
            # No user: the password was wrong. (The admin refuses a right password of a
            # non-staff user with the same message; that is no guess.)
            throttle.login_failed(username, address)
        return response

    return wrapper


def locked_out(request: HttpRequest, wait: int) -> HttpResponse:
    minutes = math.ceil(wait / 60)
    response = render(
        request,
        "portal/login.html",
        {
            "form": AuthenticationForm(request),
            "locked_minutes": minutes,
            "next": request.POST.get("next", ""),
        },
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


login = throttled_login(LoginView.as_view(template_name="portal/login.html"))


class AdminSite(admin.AdminSite):
    """The default admin site (portal.apps.AdminConfig): its login checks the same users'
    passwords, so it shares the lockout."""

    @method_decorator(throttled_login)
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        return super().login(request, extra_context)
