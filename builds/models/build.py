"""Builds, their per-platform progress and their log lines."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from .nodes import BuilderNode


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
    # The log line the reason was lifted from (the page opens the log there).
    reason_line = models.PositiveIntegerField(null=True, blank=True)
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
    # When `manage.py prune_logs` removed its log lines (PORTAL_LOG_RETENTION_DAYS).
    log_pruned_at = models.DateTimeField(null=True, blank=True)
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

    def close_platforms(self, state: str) -> None:
        """The platforms left unfinished when the build ended in `state`: a cancelled build's
        read cancelled, never failed; a failed build keeps those that were stopped because
        another one failed (cancelled) and fails the rest."""
        if state == self.State.SUCCEEDED:
            return
        unfinished = self.platform_states.exclude(state=BuildPlatform.State.DONE)
        if state == self.State.CANCELLED:
            unfinished.update(state=BuildPlatform.State.CANCELLED, failed_step="")
        else:
            unfinished.exclude(state=BuildPlatform.State.CANCELLED).update(
                state=BuildPlatform.State.FAILED
            )

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.pk,
            "project": self.project_id,
            "state": self.state,
            "reason": self.reason,
            "reason_line": self.reason_line,
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
            "attestations": [],
        }
        record = self.manifests.order_by("pk").first()
        if record is not None:
            data["manifest"] = {
                "tag": record.reference,
                "digest": record.digest,
                "platforms": record.platforms,
            }
            data["attestations"] = record.attestations
        return data


class BuildPlatform(models.Model):
    """Progress of one target platform within a build."""

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"  # on request, or stopped because another platform failed

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
    failed_step = models.CharField(max_length=20, blank=True, help_text='e.g. "6/8"')
    # The guardrail after the build (builds.guardrails.ArchCheck): {"binary", "machine", "ok"}.
    arch_check = models.JSONField(
        default=dict, db_default=models.Value({}, models.JSONField()), blank=True
    )
    # While it runs: the step BuildKit is on now (its vertex name), for the page's card.
    step = models.CharField(max_length=300, blank=True, db_default="")
    # Pushed: the image's compressed size (config and layers, from its manifest).
    size_bytes = models.BigIntegerField(null=True, blank=True)
    # Finished Dockerfile steps that came from cache (the node's or the registry's) and that ran.
    steps_cached = models.PositiveIntegerField(default=0, db_default=0)
    steps_run = models.PositiveIntegerField(default=0, db_default=0)

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
            "failed_step": self.failed_step or None,
            "reason": self.reason,
            "arch_check": self.arch_check or None,
            "step": self.step or None,
            "size_bytes": self.size_bytes,
            "steps_cached": self.steps_cached,
            "steps_run": self.steps_run,
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
