"""Git webhooks: a project's receiving URL and sealed secret, and the deliveries it got."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from .build import Build


class Webhook(models.Model):
    """One per project. `key` is the unguessable part of the URL; the secret is sealed, since
    GitHub and Gitea sign with it (HMAC) and the receiver needs it itself, not a hash."""

    project = models.OneToOneField("portal.Project", models.CASCADE, related_name="webhook")
    key = models.CharField(max_length=64, unique=True, editable=False)
    secret_sealed = models.TextField(editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+"
    )
    rotated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"webhook of {self.project_id}"


class WebhookDelivery(models.Model):
    """What one request to a webhook URL came to: a build, a reason to skip, or a refusal."""

    class Outcome(models.TextChoices):
        BUILT = "built"
        SKIPPED = "skipped"
        REFUSED = "refused"  # bad or missing signature: its delivery id claims nothing

    webhook = models.ForeignKey(Webhook, models.CASCADE, related_name="deliveries")
    delivery_id = models.CharField(max_length=100)
    host = models.CharField(max_length=20)  # github, gitlab, gitea, forgejo, unknown
    event = models.CharField(max_length=50, blank=True)
    ref = models.CharField(max_length=255, blank=True)
    commit = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    detail = models.CharField(max_length=300, blank=True)
    build = models.ForeignKey(
        Build, models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        constraints = [
            # A replayed delivery finds the first one; a refused request (anyone may send one)
            # must not claim an id a real delivery will bring later.
            models.UniqueConstraint(
                fields=["webhook", "delivery_id"],
                condition=~models.Q(outcome="refused"),
                name="one_accepted_delivery_per_id",
            )
        ]

    def __str__(self) -> str:
        return f"delivery {self.delivery_id} to {self.webhook_id}"

    def to_api(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at.isoformat(),
            "host": self.host,
            "event": self.event,
            "ref": self.ref,
            "commit": self.commit,
            "outcome": self.outcome,
            "detail": self.detail,
            "build": self.build_id,
        }
