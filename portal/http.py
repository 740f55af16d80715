"""What portal's and builds' pages share about a request."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_htmx.middleware import HtmxDetails

from portal.access import get_team_for_user, is_team_admin
from portal.ids import parse_id
from portal.models import Team


class Request(HttpRequest):
    """What the views get: django-htmx's details, and (behind login_required) a real user."""

    htmx: HtmxDetails
    user: User


def posted_pk(request: HttpRequest, name: str) -> int:
    """A row id from a form (0, which matches nothing, when it cannot name a row)."""
    return parse_id(request.POST.get(name, "")) or 0


TeamView = Callable[[Request, Team], HttpResponse]


def team_admin_form(
    *secret_fields: str, refusal: str
) -> Callable[[TeamView], Callable[..., HttpResponse]]:
    """A team page's POST form that only the team's admins may send: logged in, POST, the
    team found among the user's (404 otherwise), 403 with `refusal` for members; the view gets
    the team. `secret_fields` stay out of error reports (sensitive_post_parameters)."""

    def decorate(view: TeamView) -> Callable[..., HttpResponse]:
        @sensitive_post_parameters(*secret_fields)
        @login_required
        @require_POST
        @wraps(view)
        def wrapper(request: Request, slug: str) -> HttpResponse:
            team = get_team_for_user(request.user, slug)
            if not is_team_admin(request.user, team):
                return HttpResponse(refusal, status=403)
            return view(request, team)

        return wrapper

    return decorate
