"""Git webhooks: each host's signature (good, bad, missing), replays, what needs no build, the
size limit, hostile bodies, who may make one, and the secret kept out of pages and logs."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

import pytest
from django.test import Client

from builds import webhooks
from builds.models import Build, Webhook, WebhookDelivery
from portal.models import Project

COMMIT = "a" * 40
TAGGED = "b" * 40
TAG_OBJECT = "c" * 40


def push(ref: str = "refs/heads/main", after: str = COMMIT, **extra: Any) -> bytes:
    return json.dumps({"ref": ref, "before": "0" * 40, "after": after, **extra}).encode()


def github(secret: str, body: bytes, event: str = "push", delivery: str = "d-1") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def gitlab(
    secret: str, body: bytes, event: str = "Push Hook", delivery: str = "g-1"
) -> dict[str, str]:
    return {"X-Gitlab-Event": event, "X-Gitlab-Event-UUID": delivery, "X-Gitlab-Token": secret}


def gitea(secret: str, body: bytes, event: str = "push", delivery: str = "t-1") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # As Gitea sends them: its own names, and GitHub's event and delivery too.
    return {
        "X-Gitea-Event": event,
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Signature": digest,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
    }


def forgejo(secret: str, body: bytes, event: str = "push", delivery: str = "f-1") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    names = ("Forgejo", "Gitea")
    return {
        **{f"X-{n}-Event": event for n in names},
        **{f"X-{n}-Delivery": delivery for n in names},
        **{f"X-{n}-Signature": digest for n in names},
    }


SIGNERS = {"github": github, "gitlab": gitlab, "gitea": gitea, "forgejo": forgejo}
SIGNATURE = {
    "github": "X-Hub-Signature-256",
    "gitlab": "X-Gitlab-Token",
    "gitea": "X-Gitea-Signature",
    "forgejo": "X-Forgejo-Signature",
}


@pytest.fixture
def hook(project: Project, alice: Any) -> tuple[Webhook, str]:
    return webhooks.rotate(project, alice)


def deliver(hook: Webhook, body: bytes, headers: dict[str, str], **extra: Any) -> Any:
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    return client.post(
        webhooks.path(hook),
        body,
        content_type="application/json",
        headers=headers,
        **extra,
    )


@pytest.mark.parametrize("host", SIGNERS)
def test_a_signed_push_of_the_branch_builds_that_commit(
    hook: tuple[Webhook, str], host: str
) -> None:
    webhook, secret = hook
    body = push()
    answer = deliver(webhook, body, SIGNERS[host](secret, body))
    assert answer.status_code == 202, answer.content
    build = Build.objects.get(pk=answer.json()["build"])
    assert build.ref == COMMIT and build.project == webhook.project
    assert build.tags == ["latest"]
    delivery = WebhookDelivery.objects.get(build=build)
    assert (delivery.host, delivery.ref, delivery.outcome) == (host, "refs/heads/main", "built")


@pytest.mark.parametrize("host", SIGNERS)
def test_bad_and_missing_signatures_build_nothing(hook: tuple[Webhook, str], host: str) -> None:
    webhook, secret = hook
    body = push()
    bad = SIGNERS[host]("not-the-secret", body)
    assert deliver(webhook, body, bad).status_code == 403
    # Signed right, then the body changed: GitLab's token does not cover the body.
    tampered = SIGNERS[host](secret, push(after="d" * 40))
    assert deliver(webhook, body, tampered).status_code == (202 if host == "gitlab" else 403)
    missing = {k: v for k, v in SIGNERS[host](secret, body).items() if "Signature" not in k}
    missing.pop("X-Gitlab-Token", None)
    missing = {k: v for k, v in missing.items() if k != SIGNATURE[host]}
    assert deliver(webhook, body, missing).status_code == 401
    assert deliver(webhook, body, {}).status_code == 401
    assert Build.objects.count() == (1 if host == "gitlab" else 0)
    refused = WebhookDelivery.objects.filter(outcome="refused")
    assert refused.count() == 4 - (1 if host == "gitlab" else 0)


def test_forgejos_own_signature_is_the_one_checked(hook: tuple[Webhook, str]) -> None:
    webhook, secret = hook
    body = push()
    headers = forgejo(secret, body)
    headers["X-Forgejo-Signature"] = "0" * 64  # a good Gitea signature does not rescue it
    assert deliver(webhook, body, headers).status_code == 403


def test_signature_header_with_odd_bytes_is_refused_not_500(hook: tuple[Webhook, str]) -> None:
    webhook, _ = hook
    body = push()
    for value in ("sha256=ü" * 10, "sha256=", "md5=abc", "é"):
        answer = deliver(webhook, body, {"X-GitHub-Event": "push", "X-Hub-Signature-256": value})
        assert answer.status_code == 403, value


def test_a_replayed_delivery_starts_no_second_build(hook: tuple[Webhook, str]) -> None:
    webhook, secret = hook
    body = push()
    first = deliver(webhook, body, github(secret, body, delivery="same"))
    again = deliver(webhook, body, github(secret, body, delivery="same"))
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"build": first.json()["build"], "replayed": True}
    assert Build.objects.count() == 1
    # A new delivery id of the same push is a new request: GitHub's "redeliver" keeps the id.
    assert deliver(webhook, body, github(secret, body, delivery="other")).status_code == 202
    # Without any delivery id, the same body again is still a replay.
    headers = {k: v for k, v in github(secret, body).items() if k != "X-GitHub-Delivery"}
    assert deliver(webhook, body, headers).status_code == 202
    assert deliver(webhook, body, headers).json()["replayed"] is True
    assert Build.objects.count() == 3


def test_a_refused_request_does_not_claim_its_delivery_id(hook: tuple[Webhook, str]) -> None:
    webhook, secret = hook
    body = push()
    assert deliver(webhook, body, github("guess", body, delivery="x")).status_code == 403
    assert deliver(webhook, body, github(secret, body, delivery="x")).status_code == 202


@pytest.mark.parametrize(
    ("host", "event", "body", "reason"),
    [
        ("github", "ping", b'{"zen": "hi"}', "ping"),
        ("github", "issues", b"{}", "needs no build"),
        ("gitlab", "Merge Request Hook", b"{}", "needs no build"),
        ("gitea", "create", b"{}", "needs no build"),
        ("github", "push", push("refs/heads/feature"), "is not the project's"),
        ("github", "push", push(after="0" * 40, deleted=True), "deleted"),
        ("gitlab", "Push Hook", push(after="0" * 40), "deleted"),
        ("github", "push", push("refs/tags/v1.2.3"), "have no {semver}"),
    ],
)
def test_events_that_need_no_build_say_why(
    hook: tuple[Webhook, str], host: str, event: str, body: bytes, reason: str
) -> None:
    webhook, secret = hook
    answer = deliver(webhook, body, SIGNERS[host](secret, body, event=event))
    assert answer.status_code == 200, answer.content
    assert reason in answer.json()["skipped"]
    assert not Build.objects.exists()
    assert WebhookDelivery.objects.get().outcome == "skipped"


def test_a_version_tag_builds_the_tagged_commit_with_its_semver_tags(
    hook: tuple[Webhook, str],
) -> None:
    webhook, secret = hook
    Project.objects.filter(pk=webhook.project_id).update(tag_templates=["{semver}", "{short_sha}"])
    webhook.project.refresh_from_db()
    # An annotated tag: `after` is the tag object, head_commit the commit it points at.
    body = push("refs/tags/v1.2.3", TAG_OBJECT, head_commit={"id": TAGGED})
    answer = deliver(webhook, body, github(secret, body))
    assert answer.status_code == 202, answer.content
    build = Build.objects.get(pk=answer.json()["build"])
    assert build.ref == TAGGED
    assert build.tags == ["1.2.3", "1.2", "1", TAGGED[:7]]
    # GitLab names the commit in checkout_sha; a tag that is no version builds nothing.
    body = push("refs/tags/v2.0.0", TAG_OBJECT, checkout_sha=COMMIT)
    assert (
        Build.objects.get(
            pk=deliver(webhook, body, gitlab(secret, body, "Tag Push Hook")).json()["build"]
        ).ref
        == COMMIT
    )
    body = push("refs/tags/nightly")
    answer = deliver(webhook, body, github(secret, body, delivery="n"))
    assert "no version" in answer.json()["skipped"]


def test_a_branch_only_semver_templates_skip(hook: tuple[Webhook, str]) -> None:
    webhook, secret = hook
    Project.objects.filter(pk=webhook.project_id).update(tag_templates=["{semver}"])
    webhook.project.refresh_from_db()
    body = push()
    answer = deliver(webhook, body, github(secret, body))
    assert answer.status_code == 200 and "no tag template" in answer.json()["skipped"]


def test_the_body_size_limit_is_413(hook: tuple[Webhook, str]) -> None:
    webhook, secret = hook
    body = push(padding="x" * webhooks.MAX_BODY)
    assert deliver(webhook, body, github(secret, body)).status_code == 413
    assert not Build.objects.exists()


FUZZ = {
    "empty": b"",
    "not_json": b"ref=refs/heads/main",
    "list": b"[1, 2]",
    "string": b'"push"',
    "missing_fields": b"{}",
    "ref_only": b'{"ref": "refs/heads/main"}',
    "types": b'{"ref": 1, "after": []}',
    "short_after": push(after="abc"),
    "upper_after": push(after="A" * 40),
    "odd_ref": push("refs/pull/1/head"),
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "nul": push("refs/heads/ma\u0000in"),
    "surrogate": b'{"ref": "refs/heads/\\ud800", "after": "' + COMMIT.encode() + b'"}',
    "huge_ref": push("refs/heads/" + "x" * 100_000),
    "bad_utf8": b'{"ref": "\xff\xfe", "after": "' + COMMIT.encode() + b'"}',
    "head_commit_not_object": push("refs/tags/v1.0.0", head_commit="x"),
}


@pytest.mark.parametrize("name", FUZZ)
def test_hostile_signed_bodies_are_never_500(
    hook: tuple[Webhook, str], name: str, caplog: Any
) -> None:
    webhook, secret = hook
    body = FUZZ[name]
    for host, sign in SIGNERS.items():
        answer = deliver(webhook, body, sign(secret, body, delivery=f"{name}-{host}"))
        assert answer.status_code < 500, (host, answer.content)
        assert "error" in answer.json() or "skipped" in answer.json()
    assert not Build.objects.exists()
    assert "Internal Server Error" not in caplog.text


def test_odd_header_values_are_not_500(hook: tuple[Webhook, str]) -> None:
    webhook, secret = hook
    body = push()
    for value in ("push\x00", "push\u0085", "\ud800"):
        headers = github(secret, body, event=value, delivery=value)
        assert deliver(webhook, body, headers).status_code < 500, repr(value)


def test_unknown_urls_and_methods(hook: tuple[Webhook, str]) -> None:
    webhook, secret = hook
    client = Client()
    assert client.get(webhooks.path(webhook)).status_code == 405
    body = push()
    for key in ("nope", "x" * 100, "a%00b"):
        answer = client.post(
            f"/hooks/{key}/", body, "application/json", headers=github(secret, body)
        )
        assert answer.status_code == 404


def test_bad_signatures_are_throttled_per_address(hook: tuple[Webhook, str], settings: Any) -> None:
    settings.PORTAL_TOKEN_FAILURES_PER_ADDRESS = 3
    webhook, secret = hook
    body = push()
    for _ in range(3):
        assert deliver(webhook, body, github("guess", body)).status_code == 403
    locked = deliver(webhook, body, github(secret, body))  # even the right one, for a while
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
    other = deliver(webhook, body, github(secret, body), REMOTE_ADDR="192.0.2.9")
    assert other.status_code == 202


def test_only_team_admins_make_webhooks(
    api: Any, project: Project, alice: Any, bob: Any, charlie: Any
) -> None:
    path = f"/api/v1/projects/{project.pk}/webhook"
    assert api(bob).post(path).status_code == 403
    assert api(bob).get(path).status_code == 403
    assert api(charlie).post(path).status_code == 404
    assert api(alice).get(path).status_code == 404  # none yet
    assert not Webhook.objects.exists()
    made = api(alice).post(path)
    assert made.status_code == 200
    url, secret = made.json()["url"], made.json()["secret"]
    assert url.startswith("http://testserver/hooks/") and len(secret) == 64
    # Rotating keeps the URL, changes the secret; the old one is refused from then on.
    rotated = api(alice).post(path).json()
    assert rotated["url"] == url and rotated["secret"] != secret
    webhook = Webhook.objects.get()
    body = push()
    assert deliver(webhook, body, github(secret, body)).status_code == 403
    assert deliver(webhook, body, github(rotated["secret"], body)).status_code == 202
    listed = api(alice).get(path).json()
    assert "secret" not in listed and secret not in json.dumps(listed)
    assert [d["outcome"] for d in listed["deliveries"]] == ["built", "refused"]


def test_the_secret_is_sealed_and_never_in_pages_or_logs(
    api: Any, project: Project, alice: Any, bob: Any, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = api(alice).post(f"/api/v1/projects/{project.pk}/webhook").json()["secret"]
    webhook = Webhook.objects.get()
    assert secret not in webhook.secret_sealed
    body = push()
    deliver(webhook, body, gitlab(secret, body))
    deliver(webhook, body, gitlab("wrong", body))
    deliver(webhook, body, github(secret, body))
    client = Client()
    client.force_login(alice)
    page = client.get(project.get_absolute_url()).content.decode()
    assert webhook.key in page and "YOUR_SECRET" in page and secret not in page
    assert "No deliveries yet" not in page and "refused" in page
    assert secret not in caplog.text
    # Members see no webhook section; the button is for admins only.
    client.force_login(bob)
    assert webhook.key not in client.get(project.get_absolute_url()).content.decode()
    assert client.post(f"/projects/{project.pk}/webhook").status_code == 403


def test_the_page_button_shows_the_new_secret_once(project: Project, alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    answer = client.post(f"/projects/{project.pk}/webhook")
    assert answer.status_code == 200 and answer["Cache-Control"] == "no-store"
    webhook = Webhook.objects.get()
    text = answer.content.decode()
    assert webhooks.path(webhook) in text
    from portal.sealing import unseal

    assert unseal(webhook.secret_sealed) in text
    assert (
        unseal(webhook.secret_sealed) not in client.get(project.get_absolute_url()).content.decode()
    )
