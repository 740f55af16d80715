"""Builder nodes (Docker engines with BuildKit) and the buildx builders made of them."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from django.db import models
from django.utils import timezone

from builds.dockerhost import TlsMaterial
from portal.sealing import seal, unseal

# What BuildKit says when built without version stamping, as inside Debian's docker.io engine.
UNKNOWN_BUILDKIT = re.compile(r"^v?0\.0\.0(?:[+-].*)?$")


def known_buildkit_version(reported: str) -> str:
    """The version BuildKit reported, or "" when it is a placeholder such as v0.0.0+unknown."""
    reported = reported.strip()
    return "" if UNKNOWN_BUILDKIT.match(reported) else reported


class BuilderNode(models.Model):
    """A Docker engine with BuildKit that runs builds (`endpoint` is a DOCKER_HOST value), or a
    standalone BuildKit daemon (`kind` buildkit: its buildkitd address; builds/buildkitnodes.py).

    tcp:// nodes off loopback need mutual TLS: the CA, client certificate and key are stored
    sealed (portal.sealing) and written to a private folder only for the length of a connection.
    """

    class Kind(models.TextChoices):
        ENGINE = "engine", "Docker engine"
        BUILDKIT = "buildkit", "BuildKit daemon (buildx remote driver)"

    name = models.CharField(max_length=64, unique=True)
    kind = models.CharField(
        max_length=16,
        choices=Kind.choices,
        default=Kind.ENGINE,
        # Also in the database: workers of the previous release keep registering nodes while
        # a rolling upgrade runs this migration.
        db_default=Kind.ENGINE,
        help_text="A Docker engine, or a standalone buildkitd (tcp:// with mutual TLS, or unix://).",
    )
    endpoint = models.CharField(
        max_length=300, help_text="unix:///var/run/docker.sock, ssh://user@host or tcp://host:port"
    )
    enabled = models.BooleanField(
        default=True, help_text="Untick to drain: running builds finish, no new work starts."
    )
    max_builds = models.PositiveSmallIntegerField(
        default=2, help_text="Builds this node runs at once."
    )
    # Node pools: a node reserved for teams runs only their builds; none means shared.
    reserved_for = models.ManyToManyField(
        "portal.Team",
        blank=True,
        related_name="reserved_nodes",
        help_text="Only these teams' builds run here. None: shared by every team.",
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

    @property
    def buildkit_label(self) -> str:
        """BuildKit's version for people: the real one when known, else the engine it came with
        (the engine's BuildKit is built into it, so its version names it)."""
        version = known_buildkit_version(self.buildkit_version)
        if version:
            return version
        return f"bundled with Docker {self.engine_version}" if self.engine_version else "unknown"

    def running_builds(self) -> int:
        from .build import Build  # builds point at nodes, so this side imports late

        return (
            Build.objects.filter(state=Build.State.RUNNING, platform_states__node=self)
            .distinct()
            .count()
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "name": self.name,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "tls": bool(self.tls_sealed),
            "tls_expires_at": self.tls_expires_at.isoformat() if self.tls_expires_at else None,
            "enabled": self.enabled,
            "max_builds": self.max_builds,
            "reserved_for": sorted(team.slug for team in self.reserved_for.all()),
            "healthy": self.healthy,
            "reachable": self.reachable,
            "engine_version": self.engine_version,
            "buildkit_version": self.buildkit_version,
            "buildkit": self.buildkit_label,
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
    nodes = models.ManyToManyField(
        BuilderNode, related_name="buildx_builders", blank=True, through="BuilderMembership"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def members(self) -> list[BuilderMembership]:
        """The nodes in buildx's order (the first made the builder), with their platforms."""
        return list(self.memberships.select_related("node").order_by("position", "pk"))

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "nodes": [
                {"node": m.node_id, "name": m.node.name, "platforms": m.platforms}
                for m in self.members()
            ],
        }


class BuilderMembership(models.Model):
    """A node of a builder and the platforms it serves there (`buildx create --platform`);
    none: whatever its BuildKit offers. The table is the one the plain many-to-many had."""

    builder = models.ForeignKey(
        BuildxBuilder,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_column="buildxbuilder_id",
    )
    node = models.ForeignKey(
        BuilderNode,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_column="buildernode_id",
    )
    # Database defaults too: the previous release adds members through the plain many-to-many.
    platforms = models.JSONField(
        default=list, db_default=models.Value([], models.JSONField()), blank=True
    )
    position = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "builds_buildxbuilder_nodes"
        unique_together = [("builder", "node")]

    def __str__(self) -> str:
        return f"{self.builder} / {self.node}"
