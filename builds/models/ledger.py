"""The pushed-manifest ledger: append-only rows, refused updates and deletes."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from .build import Build


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
    # The team's hash chain (builds/chain.py): the previous row's hash and this row's, over its
    # content and that previous hash. Empty on rows written before the chain existed.
    # db_default: a raw INSERT that names neither (written past the ledger's code) gets ''.
    chain_previous = models.CharField(max_length=64, blank=True, editable=False, db_default="")
    chain_hash = models.CharField(max_length=64, blank=True, editable=False, db_default="")

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
            "chain": {"previous": self.chain_previous, "hash": self.chain_hash},
        }
