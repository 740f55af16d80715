"""Teams, memberships, projects and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from portal.grammar import InvalidValue
from portal.grammar import git as git_grammar
from portal.grammar import reference as reference_grammar
from portal.grammar.reference import canonical_domain, is_registry_host
from portal.sealing import opaque_id, seal, unseal

TOKEN_PREFIX = "cp_"

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1-50 lowercase letters, digits and inner hyphens.",
)
name_validator = RegexValidator(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$",
    "Use 1-64 letters, digits, '.', '_' or '-', starting and ending with a letter or digit.",
)


# Field validators from the grammars, so admin edits are checked like the forms.
def _as_validation_error(check: Any, value: Any) -> None:
    try:
        check(value)
    except InvalidValue as exc:
        raise ValidationError(str(exc)) from exc


def validate_git_url(value: str) -> None:
    _as_validation_error(git_grammar.validate_git_url, value)


def validate_git_ref(value: str) -> None:
    _as_validation_error(git_grammar.validate_git_ref, value)


def validate_repository(value: str) -> None:
    _as_validation_error(reference_grammar.parse_repository, value)


def default_tag_templates() -> list[str]:
    return ["latest"]


def image_allowed(image: str, prefix: str) -> bool:
    """Whether a team with this image prefix may push to this repository ("" allows all).
    Compared by path segments: prefix registry.example.com/web admits .../web/app only."""
    prefix = prefix.rstrip("/")
    host, slash, rest = prefix.partition("/")
    if slash and is_registry_host(host):
        prefix = f"{canonical_domain(host)}/{rest}"  # as references spell it
    return not prefix or image == prefix or image.startswith(prefix + "/")


class Team(models.Model):
    slug = models.SlugField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=100)
    # Builds push with the portal's registry credentials, so a team may only push below its
    # own prefix (e.g. "registry.example.com/web/"); empty: no restriction.
    image_prefix = models.CharField(
        max_length=255, blank=True, help_text="Projects' images must start with this."
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )

    def __str__(self) -> str:
        return self.slug

    @property
    def opaque_id(self) -> str:
        """The team as builder nodes see it (its BuildKit cache mount namespace)."""
        return opaque_id("team", self.pk)


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin"
        MEMBER = "member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="one_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class Project(models.Model):
    team = models.ForeignKey(Team, models.CASCADE, related_name="projects")
    name = models.CharField(max_length=64, validators=[name_validator])
    git_url = models.CharField(max_length=2000, validators=[validate_git_url])
    ref = models.CharField(max_length=255, default="main", validators=[validate_git_ref])
    image = models.CharField(
        max_length=255,
        help_text="Image repository, without a tag.",
        validators=[validate_repository],
    )
    platforms = models.JSONField(default=list)
    language = models.CharField(max_length=50)
    options = models.JSONField(default=dict, blank=True)
    # Tags each build pushes unless the request names its own: literal tags and templates
    # ({branch}, {short_sha}, {sha}, {semver}, {latest}), expanded after the checkout.
    tag_templates = models.JSONField(default=default_tag_templates)
    # Refuse to move an existing full semver tag (1.2.3) to new content.
    immutable_tags = models.BooleanField(default=False)
    # Each build reads and writes its layers at <image>:crossport-cache-<platforms>
    # (builds.planner.cache_tag), so a node that never built the project starts warm.
    registry_cache = models.BooleanField(default=True, db_default=True)
    # How builds run unless the request names a strategy (builds/planner.py STRATEGIES, or
    # builder:<name>); checked by the builds app when set and when a build is queued.
    strategy = models.CharField(max_length=80, default="auto", db_default="auto")
    # The team's own Dockerfile, replacing the plugin's generated one (empty: generated).
    custom_dockerfile = models.TextField(blank=True)
    builder_node = models.ForeignKey(
        "builds.BuilderNode", models.SET_NULL, null=True, blank=True, related_name="projects"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Private repositories (portal/gitaccess.py): the project's SSH deploy key and an https
    # token, both sealed (portal/sealing.py); only the public key is ever shown.
    deploy_key_sealed = models.TextField(blank=True, editable=False)
    deploy_public_key = models.CharField(max_length=200, blank=True, editable=False)
    git_token_sealed = models.TextField(blank=True, editable=False)
    git_token_username = models.CharField(max_length=255, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="project_name_per_team")
        ]
        ordering = ["team__slug", "name"]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    def get_absolute_url(self) -> str:
        return reverse("project", args=[self.pk])

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "team": self.team.slug,
            "name": self.name,
            "language": self.language,
            "git_url": self.git_url,
            "ref": self.ref,
            "image": self.image,
            "platforms": self.platforms,
            "options": self.options,
            "tags": self.tag_templates,
            "immutable_tags": self.immutable_tags,
            "registry_cache": self.registry_cache,
            "git_token_set": bool(self.git_token_sealed),
            "created_at": self.created_at.isoformat(),
        }


class PinnedHostKey(models.Model):
    """The SSH host key a team's first successful fetch from host:port saw; later fetches
    accept only this key (unless PORTAL_GIT_KNOWN_HOSTS names the operator's own file)."""

    team = models.ForeignKey(Team, models.CASCADE, related_name="host_keys")
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    key_type = models.CharField(max_length=50)
    key = models.TextField()  # base64, as in known_hosts
    pinned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "host", "port"], name="one_host_key_per_team")
        ]
        ordering = ["host", "port"]

    def __str__(self) -> str:
        return f"{self.host}:{self.port} {self.key_type}"


def other_owner(image: str, team: Team) -> Team | None:
    """The team whose project builds this repository, when that is not `team`: a repository
    is its builders' (a team that builds it too, from before this rule, keeps reaching it)."""
    owners = Project.objects.filter(image=image)
    if owners.filter(team=team).exists():
        return None
    other = owners.select_related("team").first()
    return other.team if other else None


def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 is stored; the raw value is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user: Any, name: str) -> tuple[ApiToken, str]:
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, prefix=raw[:10], token_hash=_hash_token(raw)
        )
        return token, raw

    @classmethod
    def authenticate(cls, raw: str) -> Any | None:
        """The active user owning this raw token, or None."""
        if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
            return None
        token = (
            cls.objects.active()
            .select_related("user")
            .filter(token_hash=_hash_token(raw), user__is_active=True)
            .first()
        )
        if token is None:
            return None
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            cls.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class TeamSecret(models.Model):
    """A value builds of the team's projects read through a BuildKit secret mount (a netrc,
    pip.conf, settings.xml or .npmrc). Sealed at rest like registry passwords; never shown."""

    team = models.ForeignKey(Team, models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=64)
    value_sealed = models.TextField(editable=False)
    # Empty: every project of the team may use it.
    projects = models.ManyToManyField(Project, blank=True, related_name="secrets")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["team", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="one_secret_name_per_team")
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"

    @property
    def value(self) -> str:
        return unseal(self.value_sealed)

    def set_value(self, value: str) -> None:
        self.value_sealed = seal(value)

    def to_api(self) -> dict[str, Any]:
        def when(moment: Any) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "name": self.name,
            "team": self.team.slug,
            "projects": sorted(p.name for p in self.projects.all()),
            "created_at": when(self.created_at),
            "rotated_at": when(self.rotated_at),
            "last_used_at": when(self.last_used_at),
        }
