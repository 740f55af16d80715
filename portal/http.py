"""What portal's and builds' pages share about a request."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from portal.ids import parse_id


class Request(HttpRequest):
    """What the views get: django-htmx's details, and (behind login_required) a real user."""

    htmx: HtmxDetails
    user: User


def posted_pk(request: HttpRequest, name: str) -> int:
    """A row id from a form (0, which matches nothing, when it cannot name a row)."""
    return parse_id(request.POST.get(name, "")) or 0
