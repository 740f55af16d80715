"""Git webhooks on the real stack: a GitHub-signed push of a commit that is no longer the
branch's head builds exactly that commit and pushes it; the same delivery again starts
nothing; a bad signature is refused and builds nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from fakes import write_hello
from stack import go_project, registry_index, wait_finished


@pytest.fixture(scope="module")
def two_commits(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """A hello-world repository over file:// whose main has moved on: (url, older, head)."""
    work = tmp_path_factory.mktemp("hooked-src")
    write_hello(work)
    git = ["git", "-c", "user.name=E2E", "-c", "user.email=e2e@example.invalid", "-C", str(work)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "hello"], check=True)
    older = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    (work / "NOTES").write_text(f"{uuid.uuid4()}\n")
    subprocess.run([*git, "add", "NOTES"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "notes"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    return f"file://{work}", older.strip(), head.strip()


def deliver(url: str, body: bytes, secret: str, delivery: str) -> tuple[int, Any]:
    """POST as GitHub does: the event, the delivery id and the body's HMAC-SHA256."""
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/e2e",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": f"sha256={signature}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_signed_push_builds_that_commit_once_and_a_bad_signature_nothing(
    portal: Any, persona: Any, two_commits: tuple[str, str, str]
) -> None:
    repo, older, head = two_commits
    project, image = go_project(portal, persona, repo, "hooked", ["linux/amd64"])
    status, made = portal.api("POST", f"/api/v1/projects/{project}/webhook", persona.token)
    assert status == 200, made
    url, secret = made["url"], made["secret"]
    assert url.startswith(portal.url + "/hooks/")

    payload = {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": older,
        "deleted": False,
        "head_commit": {"id": older},
        "repository": {"clone_url": repo},
    }
    body = json.dumps(payload).encode()
    delivery = str(uuid.uuid4())
    status, answer = deliver(url, body, secret, delivery)
    assert status == 202, answer
    build = wait_finished(portal, persona.token, answer["build"], timeout=900)
    assert build["state"] == "succeeded", build["reason"]
    # The pushed commit, not the branch's head now.
    assert build["commit"] == older != head
    assert build["tags"] == ["latest"]
    digest, index = registry_index(image, "latest")
    assert build["manifest"]["digest"] == digest
    assert index["annotations"]["org.opencontainers.image.revision"] == older

    # GitHub's "Redeliver" sends the same delivery id: no second build.
    status, again = deliver(url, body, secret, delivery)
    assert (status, again) == (200, {"build": answer["build"], "replayed": True})

    # A wrong secret: refused, nothing built.
    status, refused = deliver(url, body, "not-" + secret, str(uuid.uuid4()))
    assert status == 403, refused
    status, listed = portal.api("GET", f"/api/v1/projects/{project}/webhook", persona.token)
    assert status == 200
    assert [(d["outcome"], d["build"]) for d in listed["deliveries"]] == [
        ("refused", None),
        ("built", answer["build"]),
    ]
    assert secret not in json.dumps(listed)
    assert secret not in (portal.data_dir / "server.log").read_text()
