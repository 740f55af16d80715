"""Access helpers: everything is team-scoped, and outside the team every lookup is a 404.

Image repositories too: a team may use one inside its image prefix that no other team's
project builds. A refusal says the same whatever the reason, so it never tells whether another
team builds the repository, let alone which one.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from portal.grammar import InvalidValue
from portal.models import Membership, Project, Team, image_allowed, other_owner

NOT_ALLOWED = "This image repository is not allowed for your team."


def teams_for(user: Any) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user).order_by("slug")


def projects_for(user: Any) -> QuerySet[Project]:
    return Project.objects.filter(team__in=teams_for(user)).select_related("team")


def get_team_for_user(user: Any, slug: str, *, admin: bool = False) -> Team:
    if not slug.isprintable() or len(slug) > 50:  # names no team; a NUL would reach the query
        raise Http404("no such team")
    teams = teams_for(user)
    if admin:
        teams = teams.filter(memberships__user=user, memberships__role=Membership.Role.ADMIN)
    team = teams.filter(slug=slug).first()
    if team is None:
        raise Http404("no such team")
    return team


def is_team_admin(user: Any, team: Team) -> bool:
    return team.memberships.filter(user_id=user.pk, role=Membership.Role.ADMIN).exists()


def repository_allowed(image: str, team: Team) -> bool:
    return image_allowed(image, team.image_prefix) and other_owner(image, team) is None


class NotAllowed(InvalidValue):
    """A repository the team may not use; str() is NOT_ALLOWED, without the repository."""

    def __init__(self, kind: str, image: str) -> None:
        super().__init__(kind, image, "not allowed")
        self.args = (NOT_ALLOWED,)


def check_repository(kind: str, image: str, team: Team) -> None:
    if not repository_allowed(image, team):
        raise NotAllowed(kind, image)


def get_project_for_user(user: Any, pk: int) -> Project:
    project = projects_for(user).filter(pk=pk).first()
    if project is None:
        raise Http404("no such project")
    return project
