"""Git webhooks, the service: make or rotate a project's webhook, and turn one delivery into a
build (through services.queue_build, the one way builds start), a reason to skip, or a refusal.

Which pushes build: the project's branch (`project.ref`), and version tags (vX.Y.Z) when its
tag templates hold `{semver}`; a build is of the pushed commit itself (`after`; for an annotated
tag, the commit it points at), never of whatever the ref points at later. The templates are
expanded here, with the branch or tag the push named, since the build fetches a bare commit.
"""

from __future__ import annotations

import json
import logging
import secrets
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from builds import services
from builds.hookhosts import Host, Push, Unusable, identify, parse_push
from builds.models import Webhook, WebhookDelivery
from portal import tagging
from portal.access import is_team_admin
from portal.grammar import InvalidValue
from portal.models import Project
from portal.sealing import seal, unseal

log = logging.getLogger("crossport.webhooks")

MAX_BODY = 1024 * 1024  # push payloads are small; GitHub lists at most 20 commits
KEEP_REFUSED = 20  # refusals anyone can cause: only the last few are kept
SHOWN = 10
Outcome = WebhookDelivery.Outcome


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    refused: bool = False


def rotate(project: Project, user: Any) -> tuple[Webhook, str]:
    """Make the project's webhook, or give it a new secret (the URL stays); the secret, which
    is shown this once and stored sealed."""
    secret = secrets.token_hex(32)
    hook, created = Webhook.objects.get_or_create(
        project=project,
        defaults={
            "key": secrets.token_urlsafe(24),
            "secret_sealed": seal(secret),
            "created_by": user,
        },
    )
    if not created:
        hook.secret_sealed = seal(secret)
        hook.created_by = user
        hook.rotated_at = timezone.now()
        hook.save(update_fields=["secret_sealed", "created_by", "rotated_at"])
    log.info("webhook of project %s %s", project.pk, "made" if created else "given a new secret")
    return hook, secret


def path(hook: Webhook) -> str:
    return reverse("webhook", args=[hook.key])


def covered(project: Project, push: Push) -> list[str]:
    """The tags a build of this push gets, by the project's templates. Raises Unusable when the
    project's rules do not cover the push."""
    templates = list(project.tag_templates or ["latest"])
    if push.branch:
        if push.branch != project.ref.removeprefix("refs/heads/"):
            raise Unusable(f"branch {push.branch[:100]} is not the project's ({project.ref})")
        name, git_tag = push.branch, None
    else:
        if "{semver}" not in templates:
            raise Unusable(f"tag {push.tag[:100]}: the project's tags have no {{semver}}")
        if not tagging.SEMVER.fullmatch(push.tag):
            raise Unusable(f"tag {push.tag[:100]} is no version (vX.Y.Z)")
        name, git_tag = push.tag, push.tag
    try:
        tags = tagging.expand(
            templates, ref=name, commit=push.commit, default_ref=project.ref, git_tag=git_tag
        )
    except InvalidValue as exc:
        raise Unusable(f"tags: {exc}", 422) from None
    if not tags:
        raise Unusable(f"no tag template applies to {name} ({' '.join(templates)})")
    return tags


def receive(hook: Webhook, headers: Mapping[str, str], body: bytes) -> Answer:
    """One delivery, its signature checked first (SealError when the key changed)."""
    host = identify(headers)
    if host is None:
        return _refuse(hook, None, "", "no signature (no GitHub, GitLab or Gitea header)", 401)
    signed = host.signed(headers, body, unseal(hook.secret_sealed))
    if not signed:
        reason = "no signature" if signed is None else "bad signature"
        status = 401 if signed is None else 403
        return _refuse(hook, host, host.event(headers), reason, status)
    event, delivery_id = host.event(headers), host.delivery(headers, body)
    first = _accepted(hook, delivery_id)
    if first is not None:
        return _replayed(first)
    row = WebhookDelivery(webhook=hook, delivery_id=delivery_id, host=host.name, event=event)
    try:
        push = parse_push(host, event, body)
        row.ref, row.commit = push.ref[:255], push.commit
        tags = covered(hook.project, push)
    except Unusable as exc:
        return _skipped(row, str(exc), exc.status)
    try:
        with transaction.atomic():
            row.outcome = Outcome.BUILT
            row.save()
            try:
                build = services.queue_build(hook.project, None, push.commit, tags)
            except InvalidValue as exc:
                row.outcome, row.detail = Outcome.SKIPPED, str(exc)[:300]
                row.save(update_fields=["outcome", "detail"])
                return Answer(422, {"skipped": row.detail})
            row.build = build
            row.save(update_fields=["build"])
    except IntegrityError:  # the same delivery, arrived in parallel: it has the build
        first = _accepted(hook, delivery_id)
        return _replayed(first) if first else Answer(409, {"error": "try again"})
    log.info("webhook: %s %s at %s queued build %s", host.name, push.ref, push.commit, build.pk)
    return Answer(202, {"build": build.pk})


def _accepted(hook: Webhook, delivery_id: str) -> WebhookDelivery | None:
    return (
        WebhookDelivery.objects.filter(webhook=hook, delivery_id=delivery_id)
        .exclude(outcome=Outcome.REFUSED)
        .first()
    )


def _replayed(first: WebhookDelivery) -> Answer:
    if first.build_id:
        return Answer(200, {"build": first.build_id, "replayed": True})
    return Answer(200, {"skipped": f"replayed delivery ({first.detail})"[:300], "replayed": True})


def _skipped(row: WebhookDelivery, reason: str, status: int) -> Answer:
    row.outcome, row.detail = Outcome.SKIPPED, reason[:300]
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        first = _accepted(row.webhook, row.delivery_id)
        return _replayed(first) if first else Answer(409, {"error": "try again"})
    if status >= 400:
        return Answer(status, {"error": row.detail})
    return Answer(status, {"skipped": row.detail})


def _refuse(hook: Webhook, host: Host | None, event: str, reason: str, status: int) -> Answer:
    """Recorded without its delivery id (a refusal claims none); the view counts it against
    the sender's address."""
    WebhookDelivery.objects.create(
        webhook=hook,
        delivery_id="-",
        host=host.name if host else "unknown",
        event=event,
        outcome=Outcome.REFUSED,
        detail=reason,
    )
    stale = (
        WebhookDelivery.objects.filter(webhook=hook, outcome=Outcome.REFUSED)
        .order_by("-received_at", "-pk")
        .values_list("pk", flat=True)[KEEP_REFUSED:]
    )
    WebhookDelivery.objects.filter(pk__in=list(stale)).delete()
    return Answer(status, {"error": reason}, refused=True)


def deliveries(hook: Webhook) -> list[WebhookDelivery]:
    return list(hook.deliveries.select_related("build")[:SHOWN])


def page(project: Project, user: Any, absolute: Callable[[str], str]) -> dict[str, Any] | None:
    """What the project page shows team admins (None for anyone else): the URL, the last
    deliveries and how to send a test; never the secret."""
    if not is_team_admin(user, project.team):
        return None
    hook = Webhook.objects.filter(project=project).first()
    if hook is None:
        return {"url": "", "deliveries": [], "hint": ""}
    url = absolute(path(hook))
    return {"url": url, "deliveries": deliveries(hook), "hint": test_hint(url, project)}


def test_hint(url: str, project: Project) -> str:
    """A shell snippet that sends a GitHub-signed push of the project's branch; the secret and
    the commit are placeholders the admin fills in."""
    body = json.dumps({"ref": f"refs/heads/{project.ref}", "after": "FULL_COMMIT_SHA"})
    return (
        f"BODY={shlex.quote(body)}\n"
        "SIG=$(printf '%s' \"$BODY\" | openssl dgst -sha256 -hmac 'YOUR_SECRET' | sed 's/^.* //')\n"
        f"curl -X POST {shlex.quote(url)} -H 'Content-Type: application/json' \\\n"
        "  -H 'X-GitHub-Event: push' -H \"X-GitHub-Delivery: test-$(date +%s)\" \\\n"
        '  -H "X-Hub-Signature-256: sha256=$SIG" --data "$BODY"'
    )
