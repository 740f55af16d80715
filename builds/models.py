"""Builder nodes, builds (with per-platform status and log lines) and the pushed-manifest ledger."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from builds.dockerhost import TlsMaterial
from portal.sealing import seal, unseal


class BuilderNode(models.Model):
    """A Docker engine with BuildKit that runs builds. `endpoint` is a DOCKER_HOST value.

    tcp:// nodes off loopback need mutual TLS: the CA, client certificate and key are stored
    sealed (portal.sealing) and written to a private folder only for the length of a connection.
    """

    name = models.CharField(max_length=64, unique=True)
    endpoint = models.CharField(
        max_length=300, help_text="unix:///var/run/docker.sock, ssh://user@host or tcp://host:port"
    )
    enabled = models.BooleanField(
        default=True, help_text="Untick to drain: running builds finish, no new work starts."
    )
    max_builds = models.PositiveSmallIntegerField(
        default=2, help_text="Builds this node runs at once."
    )
    tls_sealed = models.TextField(blank=True, editable=False)
    tls_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    reachable = models.BooleanField(default=False)
    engine_version = models.CharField(max_length=100, blank=True)
    buildkit_version = models.CharField(max_length=100, blank=True)
    image_store = models.CharField(
        max_length=64,
        blank=True,
        help_text="containerd, or the engine's classic storage driver (overlay2, ...)",
    )
    native_platforms = models.JSONField(default=list, blank=True)
    emulated_platforms = models.JSONField(default=list, blank=True)
    free_disk_bytes = models.BigIntegerField(null=True, blank=True)
    # Emulators an admin installed: a check that finds one missing (lost on reboot) says so,
    # and reinstalls it when repair_emulators is on.
    wanted_emulators = models.JSONField(default=list, blank=True)
    repair_emulators = models.BooleanField(default=False)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def tls(self) -> TlsMaterial | None:
        if not self.tls_sealed:
            return None
        return TlsMaterial(**json.loads(unseal(self.tls_sealed)))

    def set_tls(self, material: TlsMaterial | None, expires_at: datetime | None = None) -> None:
        self.tls_sealed = seal(json.dumps(asdict(material))) if material else ""
        self.tls_expires_at = expires_at if material else None

    @property
    def healthy(self) -> bool:
        return self.enabled and self.reachable

    @property
    def platforms(self) -> list[str]:
        return [*self.native_platforms, *self.emulated_platforms]

    @property
    def missing_emulators(self) -> list[str]:
        return [p for p in self.wanted_emulators if p not in self.platforms]

    def running_builds(self) -> int:
        return (
            Build.objects.filter(state=Build.State.RUNNING, platform_states__node=self)
            .distinct()
            .count()
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "name": self.name,
            "endpoint": self.endpoint,
            "tls": bool(self.tls_sealed),
            "tls_expires_at": self.tls_expires_at.isoformat() if self.tls_expires_at else None,
            "enabled": self.enabled,
            "max_builds": self.max_builds,
            "healthy": self.healthy,
            "reachable": self.reachable,
            "engine_version": self.engine_version,
            "buildkit_version": self.buildkit_version,
            "image_store": self.image_store,
            "native_platforms": self.native_platforms,
            "emulated_platforms": self.emulated_platforms,
            "missing_emulators": self.missing_emulators,
            "free_disk_bytes": self.free_disk_bytes,
            "running_builds": self.running_builds(),
            "last_checked_at": self.last_checked_at.isoformat() if self.last_checked_at else None,
            "last_error": self.last_error,
        }


class BuildxBuilder(models.Model):
    """A named multi-node buildx builder (docker-container driver), made by builds.builders."""

    name = models.CharField(max_length=63, unique=True)
    nodes = models.ManyToManyField(BuilderNode, related_name="buildx_builders", blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Build(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    class Fault(models.TextChoices):
        """Whose fault a failure is: the project's ("your build failed") or ours."""

        NONE = ""
        USER = "user"
        SYSTEM = "system"

    project = models.ForeignKey("portal.Project", models.CASCADE, related_name="builds")
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.QUEUED, db_index=True
    )
    reason = models.TextField(blank=True, help_text="Why the build ended the way it did.")
    fault = models.CharField(max_length=10, choices=Fault.choices, default=Fault.NONE, blank=True)
    ref = models.CharField(max_length=255)
    commit = models.CharField(max_length=64, blank=True)
    tags = models.JSONField(default=list)
    platforms = models.JSONField(default=list)
    dockerfile = models.TextField(blank=True, help_text="The Dockerfile as built.")
    node = models.ForeignKey(
        BuilderNode, models.SET_NULL, null=True, blank=True, related_name="builds"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Lease: the worker that claimed the build renews heartbeat_at; the reaper fails stale ones.
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    digest = models.CharField(max_length=100, blank=True, help_text="Pushed index digest.")
    strategy = models.CharField(max_length=80, default="auto")
    # The build plan (builds.planner.Plan.to_json): the preview when queued, the real one once
    # a worker claimed the build.
    plan = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"build {self.pk} of {self.project_id}"

    def get_absolute_url(self) -> str:
        return reverse("build", args=[self.pk])

    @property
    def finished(self) -> bool:
        return self.state in self.FINISHED

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.pk,
            "project": self.project_id,
            "state": self.state,
            "reason": self.reason,
            "fault": self.fault,
            "ref": self.ref,
            "commit": self.commit,
            "tags": self.tags,
            "strategy": self.strategy,
            "plan": self.plan,
            "platforms": {
                p.platform: p.to_api() for p in self.platform_states.select_related("node")
            },
            "node": self.node.name if self.node else None,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "manifest": None,
        }
        record = self.manifests.order_by("pk").first()
        if record is not None:
            data["manifest"] = {
                "tag": record.reference,
                "digest": record.digest,
                "platforms": record.platforms,
            }
        return data


class BuildPlatform(models.Model):
    """Progress of one target platform within a build."""

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    build = models.ForeignKey(Build, models.CASCADE, related_name="platform_states")
    platform = models.CharField(max_length=50)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    digest = models.CharField(max_length=100, blank=True)
    node = models.ForeignKey(
        BuilderNode, models.SET_NULL, null=True, blank=True, related_name="platform_runs"
    )
    method = models.CharField(max_length=10, blank=True, help_text="native, cross or emulated")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["build", "platform"], name="one_status_per_platform")
        ]

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 1)

    def to_api(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "node": self.node.name if self.node else None,
            "method": self.method or None,
            "seconds": self.seconds,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "digest": self.digest,
            "done": self.done,
            "total": self.total,
            "reason": self.reason,
        }

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        return int(100 * self.done / self.total) if self.total else 0


class LogLine(models.Model):
    """One line of build output. `seq` orders a build's lines without gaps, from 1."""

    build = models.ForeignKey(Build, models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    platform = models.CharField(max_length=50, blank=True)
    stream = models.PositiveSmallIntegerField(default=0)
    text = models.TextField()

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["build", "seq"], name="one_line_per_seq")]

    def to_api(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "platform": self.platform or None,
            "stream": self.stream,
            "text": self.text,
        }


class AppendOnlyError(RuntimeError):
    pass


class ManifestRecordQuerySet(models.QuerySet["ManifestRecord"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("the manifest ledger is append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("the manifest ledger is append-only")


class ManifestRecord(models.Model):
    """Append-only ledger of every pushed multi-platform index: what, when, who, from where."""

    class Kind(models.TextChoices):
        BUILD = "build"
        MERGE = "merge"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BUILD)
    # Every record since merges exist names its team; older ones reach it through the project.
    team = models.ForeignKey(
        "portal.Team", models.PROTECT, null=True, blank=True, related_name="manifests"
    )
    project = models.ForeignKey(
        "portal.Project", models.PROTECT, null=True, blank=True, related_name="manifests"
    )
    build = models.ForeignKey(
        Build, models.PROTECT, null=True, blank=True, related_name="manifests"
    )
    # A merge's inputs: [{"reference": ..., "digest": ..., "platforms": {platform: digest}}].
    sources = models.JSONField(default=list, blank=True)
    reference = models.CharField(max_length=400, help_text="repository:tag as pushed")
    digest = models.CharField(max_length=100)
    media_type = models.CharField(max_length=100, blank=True)
    platforms = models.JSONField(default=dict, help_text="platform -> manifest digest")
    attestations = models.JSONField(default=list, blank=True)
    pushed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, related_name="+"
    )
    pushed_at = models.DateTimeField(default=timezone.now, db_index=True)
    source_url = models.CharField(max_length=2000, blank=True)
    source_ref = models.CharField(max_length=255, blank=True)
    source_commit = models.CharField(max_length=64, blank=True)
    builder_node = models.CharField(
        max_length=400, blank=True, help_text="node names, comma-separated"
    )
    # The digest the tag pointed to before this push, when the tag moved.
    previous_digest = models.CharField(max_length=100, blank=True)

    objects = ManifestRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-pushed_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.reference}@{self.digest}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None or not self._state.adding:
            raise AppendOnlyError("the manifest ledger is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("the manifest ledger is append-only")

    @property
    def team_slug(self) -> str | None:
        if self.team_id and self.team:
            return self.team.slug
        return self.project.team.slug if self.project else None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "kind": self.kind,
            "team": self.team_slug,
            "project": self.project_id,
            "build": self.build_id,
            "sources": self.sources,
            "tag": self.reference,
            "digest": self.digest,
            "media_type": self.media_type,
            "platforms": self.platforms,
            "attestations": self.attestations,
            "pushed_by": self.pushed_by.get_username() if self.pushed_by else None,
            "pushed_at": self.pushed_at.isoformat(),
            "source": {
                "url": self.source_url,
                "ref": self.source_ref,
                "commit": self.source_commit,
            },
            "builder_node": self.builder_node,
            "previous_digest": self.previous_digest or None,
        }


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
