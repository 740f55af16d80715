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
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils.decorators import method_decorator

from portal import throttle

View = Callable[..., HttpResponseBase]


def throttled_login(view: View) -> View:
    """Refuse a locked-out account or address before the password is checked; then keep the
    attempt counted if the form says the password was wrong, else give it back."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = request.POST.get("username", "")
        address = throttle.client_address(request.META.get("REMOTE_ADDR"))
        attempt = throttle.login_attempt(username, address)
        if attempt.wait:
            return locked_out(request, attempt.wait)
        response = view(request, *args, **kwargs)
        if _wrong_password(response):
            attempt.failed()
        elif isinstance(response, HttpResponseRedirect) and request.user.is_authenticated:
            attempt.succeeded()  # LoginView redirects only after a login
        else:
            attempt.void()
        return response

    return wrapper


def _wrong_password(response: HttpResponseBase) -> bool:
    """LoginView answers a rejected form with the page and the form in its context. An
    invalid_login without a user means the password was wrong (the admin refuses the right
    password of a non-staff user with the same message; that is no guess)."""
    form = (getattr(response, "context_data", None) or {}).get("form")
    return (
        form is not None
        and form.has_error(NON_FIELD_ERRORS, "invalid_login")
        and form.get_user() is None
    )


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
