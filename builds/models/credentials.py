"""Registry logins a team stores for pushes and reads (the password sealed at rest)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.sealing import seal, unseal


class RegistryCredential(models.Model):
    """A team's login for one registry host. The password (or token) is sealed at rest and
    reaches the docker CLI only through a temporary DOCKER_CONFIG (builds.credentials)."""

    team = models.ForeignKey("portal.Team", models.CASCADE, related_name="credentials")
    registry = models.CharField(max_length=255, help_text="host[:port], e.g. registry.example.com")
    username = models.CharField(max_length=255)
    password_sealed = models.TextField(editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True)
    last_test_message = models.TextField(blank=True)

    class Meta:
        ordering = ["team", "registry"]
        constraints = [
            models.UniqueConstraint(fields=["team", "registry"], name="one_login_per_registry")
        ]

    def __str__(self) -> str:
        return f"{self.username}@{self.registry}"

    @property
    def password(self) -> str:
        return unseal(self.password_sealed)

    def set_password(self, password: str) -> None:
        self.password_sealed = seal(password)

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "team": self.team.slug,
            "registry": self.registry,
            "username": self.username,
            "updated_at": self.updated_at.isoformat(),
            "last_tested_at": self.last_tested_at.isoformat() if self.last_tested_at else None,
            "last_test_ok": self.last_test_ok,
            "last_test_message": self.last_test_message,
        }
