"""`manage.py portal_user USERNAME --team SLUG [--admin] [--staff]`: create or update a user,
its team and membership, and print a new API token as the last line.

A password, if wanted for the browser, is read from the environment variable named by
--password-env (never from argv, where every process on the machine could read it)."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from portal.models import ApiToken, Membership, Team, slug_validator


class Command(BaseCommand):
    help = "Create or update a user and team membership; print a new API token last."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--team", required=True, help="team slug (created when missing)")
        parser.add_argument("--admin", action="store_true", help="team admin (else member)")
        parser.add_argument("--staff", action="store_true", help="may use the Django admin")
        parser.add_argument(
            "--password-env", help="name of an environment variable holding a password"
        )

    @transaction.atomic
    def handle(
        self,
        *args: Any,
        username: str,
        team: str,
        admin: bool,
        staff: bool,
        password_env: str | None,
        **options: Any,
    ) -> None:
        try:
            slug_validator(team)
        except ValidationError as exc:
            raise CommandError(f"--team: {exc.messages[0]}") from exc
        user_model = get_user_model()
        try:
            user_model.username_validator(username)
        except ValidationError as exc:
            raise CommandError(f"username: {exc.messages[0]}") from exc
        user, created = user_model.objects.get_or_create(username=username)
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                raise CommandError(f"environment variable {password_env} is empty or unset")
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        if staff:
            user.is_staff = user.is_superuser = True
        user.save()
        team_obj, _ = Team.objects.get_or_create(slug=team, defaults={"name": team})
        role = Membership.Role.ADMIN if admin else Membership.Role.MEMBER
        Membership.objects.update_or_create(user=user, team=team_obj, defaults={"role": role})
        _, raw = ApiToken.issue(user, "portal_user")
        self.stdout.write(f"{'created' if created else 'updated'} {username} ({role} of {team})")
        self.stdout.write(raw)
