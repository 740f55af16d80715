"""Team secrets: checked, sealed and scoped here; builds read them (builds.buildsecrets).

A value is checked without ever being echoed (errors say "(hidden)"), sealed with the one
mechanism registry passwords use (portal.sealing), and never answered again. Names follow the
grammar plugins write into Dockerfiles (lang_plugins.secrets).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from lang_plugins.secrets import SECRET_NAME_MESSAGE, is_secret_name
from portal.grammar import InvalidValue
from portal.models import Project, Team, TeamSecret

MAX_VALUE = 64 * 1024
MAX_SECRETS = 100  # per team


class SecretExists(InvalidValue):
    def __init__(self, name: str) -> None:
        super().__init__("secret", name, "the team has a secret of that name: rotate it instead")


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not is_secret_name(name):
        raise InvalidValue(
            "secret name", name if isinstance(name, str) else "", SECRET_NAME_MESSAGE
        )
    return name


def validate_value(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidValue("secret value", "(hidden)", "give the secret's value")
    if len(value) > MAX_VALUE:
        raise InvalidValue("secret value", "(hidden)", f"at most {MAX_VALUE} characters")
    if "\0" in value:
        raise InvalidValue("secret value", "(hidden)", "no NUL characters")
    return value


def scope(team: Team, names: object) -> list[Project]:
    """The team's projects a secret is limited to, by name (none: all of them)."""
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidValue("projects", "", "give a list of the team's project names")
    found = {p.name: p for p in team.projects.filter(name__in=names)}
    missing = sorted(set(names) - set(found))
    if missing:
        raise InvalidValue("projects", missing[0][:64], "no project of the team has that name")
    return [found[n] for n in sorted(found)]


def create(team: Team, name: object, value: object, projects: object, user: Any) -> TeamSecret:
    secret = TeamSecret(team=team, name=validate_name(name))
    secret.set_value(validate_value(value))
    limited = scope(team, projects)
    if team.secrets.count() >= MAX_SECRETS:
        raise InvalidValue("secret", secret.name, f"a team keeps at most {MAX_SECRETS} secrets")
    secret.created_by = user if getattr(user, "is_authenticated", False) else None
    try:
        with transaction.atomic():
            secret.save()
            secret.projects.set(limited)
    except IntegrityError:
        raise SecretExists(secret.name) from None
    return secret


def rotate(secret: TeamSecret, value: object, projects: object = None) -> TeamSecret:
    """A new value (and, when given, a new scope); the old value is gone."""
    secret.set_value(validate_value(value))
    limited = scope(secret.team, projects) if projects is not None else None
    secret.rotated_at = timezone.now()
    with transaction.atomic():
        secret.save(update_fields=["value_sealed", "rotated_at"])
        if limited is not None:
            secret.projects.set(limited)
    return secret


def find(team: Team, name: str) -> TeamSecret | None:
    if not is_secret_name(name):
        return None
    return team.secrets.filter(name=name).first()


def for_build(project: Project, names: Iterable[str]) -> tuple[list[TeamSecret], list[str]]:
    """The secrets of the project's team these names give it, and why others cannot be had
    (missing, or limited to other projects)."""
    wanted = sorted(set(names))
    rows = {
        s.name: s
        for s in TeamSecret.objects.filter(
            team_id=project.team_id, name__in=wanted
        ).prefetch_related("projects")
    }
    found, problems = [], []
    for name in wanted:
        secret = rows.get(name)
        if secret is None:
            problems.append(f"secret {name} does not exist in team {project.team.slug}")
        elif secret.projects.all() and project not in secret.projects.all():
            problems.append(f"secret {name} is not available to project {project.name}")
        else:
            found.append(secret)
    return found, problems


def mark_used(secrets: list[TeamSecret]) -> None:
    TeamSecret.objects.filter(pk__in=[s.pk for s in secrets]).update(last_used_at=timezone.now())
