"""Private repositories, the portal's side: a project's deploy key (public half shown, the
private half sealed and never shown), its write-only git token, and who may change them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from django.db import connection
from django.test import Client

from portal import gitaccess
from portal.models import Membership, PinnedHostKey, Project

CANARY = "canary-git-T0ken-5d1e"


def _put(api: Any, path: str, body: Any) -> Any:
    return api.client.put(
        path, json.dumps(body), content_type="application/json", headers=api.headers
    )


def _delete(api: Any, path: str) -> Any:
    return api.client.delete(path, headers=api.headers)


def test_deploy_key_is_ed25519_and_its_fingerprint_is_ssh_keygens(
    api: Any, project: Project, bob: Any, tmp_path: Path
) -> None:
    answer = api(bob).get(f"/api/v1/projects/{project.pk}/deploy-key")
    assert answer.status_code == 200
    body = answer.json()
    assert body["public_key"].startswith("ssh-ed25519 ")
    (tmp_path / "key.pub").write_text(body["public_key"] + "\n")
    listed = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "key.pub")], capture_output=True, text=True
    )
    assert listed.stdout.split()[1] == body["fingerprint"]
    assert "read-only deploy key" in body["where_to_add"].lower().replace("leave write", "")
    # The same key on every read; the private half is sealed, never answered.
    assert api(bob).get(f"/api/v1/projects/{project.pk}/deploy-key").json() == body
    project.refresh_from_db()
    private = gitaccess.private_deploy_key(project)
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert private not in answer.content.decode()
    assert "PRIVATE" not in project.deploy_key_sealed
    # ssh-keygen agrees the private key is the public key's other half.
    (tmp_path / "key").write_text(private)
    (tmp_path / "key").chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(tmp_path / "key")], capture_output=True, text=True
    )
    assert derived.stdout.split()[:2] == body["public_key"].split()[:2]


def test_only_team_admins_rotate_the_deploy_key(
    api: Any, project: Project, alice: Any, bob: Any, charlie: Any
) -> None:
    path = f"/api/v1/projects/{project.pk}/deploy-key"
    before = api(bob).get(path).json()
    assert api(bob).post(path).status_code == 403
    assert api(charlie).get(path).status_code == 404
    assert api(charlie).post(path).status_code == 404
    assert api(bob).get(path).json() == before
    rotated = api(alice).post(path)
    assert rotated.status_code == 200
    assert rotated.json()["fingerprint"] != before["fingerprint"]
    assert api(bob).get(path).json() == rotated.json()


def test_git_token_is_write_only_sealed_and_for_team_admins(
    api: Any, project: Project, alice: Any, bob: Any, charlie: Any
) -> None:
    path = f"/api/v1/projects/{project.pk}/git-token"
    body = {"username": "ci-bot", "token": CANARY}
    assert _put(api(bob), path, body).status_code == 403
    assert _put(api(charlie), path, body).status_code == 404
    assert api(alice).get(path).status_code == 405  # nothing to read
    answer = _put(api(alice), path, body)
    assert answer.status_code == 204
    shown = api(bob).get(f"/api/v1/projects/{project.pk}")
    assert shown.json()["git_token_set"] is True
    assert CANARY not in shown.content.decode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT git_token_sealed FROM portal_project")
        (sealed,) = cursor.fetchone()
    assert sealed and CANARY not in sealed
    project.refresh_from_db()
    assert gitaccess.git_token(project) == gitaccess.Token("ci-bot", CANARY)
    # Bad values are refused without being echoed.
    bad = _put(api(alice), path, {"username": "ci", "token": CANARY + "\nx"})
    assert bad.status_code == 400 and CANARY not in bad.content.decode()
    assert _delete(api(bob), path).status_code == 403
    assert _delete(api(alice), path).status_code == 204
    assert api(bob).get(f"/api/v1/projects/{project.pk}").json()["git_token_set"] is False


def test_project_page_shows_the_public_key_fingerprint_and_host_keys(
    client: Client, project: Project, alice: Any, bob: Any
) -> None:
    public = gitaccess.deploy_key(project)
    PinnedHostKey.objects.create(
        team=project.team, host="git.example.com", port=22, key_type="ssh-ed25519", key="AAAA"
    )
    client.force_login(bob)
    page = client.get(project.get_absolute_url()).content.decode()
    assert public in page
    assert gitaccess.fingerprint(public) in page
    assert 'data-copy="#deploy-key"' in page and "Deploy keys" in page
    assert "git.example.com:22" in page
    assert "PRIVATE KEY" not in page
    assert 'name="token"' not in page  # members see, admins change
    client.force_login(alice)
    page = client.get(project.get_absolute_url()).content.decode()
    assert 'name="token"' in page


def test_project_page_sets_and_clears_the_token_and_rotates_the_key(
    client: Client, project: Project, alice: Any, bob: Any
) -> None:
    url = f"/projects/{project.pk}/git-access"
    client.force_login(bob)
    assert client.post(url, {"action": "rotate"}).status_code == 403
    client.force_login(alice)
    before = gitaccess.deploy_key(project)
    client.post(url, {"action": "token", "username": "ci", "token": CANARY})
    project.refresh_from_db()
    assert gitaccess.git_token(project) == gitaccess.Token("ci", CANARY)
    page = client.get(project.get_absolute_url()).content.decode()
    assert CANARY not in page and 'id="git-token-state">set' in page
    client.post(url, {"action": "clear-token"})
    client.post(url, {"action": "rotate"})
    project.refresh_from_db()
    assert gitaccess.git_token(project) is None
    assert project.deploy_public_key != before


def test_detect_uses_only_projects_and_tokens_the_caller_may_use(
    api: Any, project: Project, alice: Any, charlie: Any, beta: Any
) -> None:
    body = {"team": "beta", "git_url": "file:///srv/git/hello.git", "project": project.pk}
    assert api(charlie).post("/api/v1/detect", body).status_code == 404  # not charlie's
    Membership.objects.create(user=alice, team=beta, role=Membership.Role.MEMBER)
    mixed = api(alice).post("/api/v1/detect", body)  # alpha's project under team beta
    assert mixed.status_code == 400
    one_off = {"team": "alpha", "git_url": "file:///srv/git/hello.git", "git_token": CANARY}
    refused = api(alice).post("/api/v1/detect", one_off)  # a token needs its user name
    assert refused.status_code == 400 and CANARY not in refused.content.decode()
    project.refresh_from_db()
    assert not project.git_token_sealed


def test_a_projects_token_and_key_go_only_to_its_own_git_url(
    api: Any, project: Project, alice: Any
) -> None:
    """A member may not point detection at a host of their own with the project's access:
    git would hand that host the token (askpass) the member may never read."""
    from portal import gitaccess

    gitaccess.set_git_token(project, "ci", CANARY)
    body = {"team": "alpha", "project": project.pk, "git_url": "https://attacker.test/x.git"}
    answer = api(alice).post("/api/v1/detect", body)
    assert answer.status_code == 400, answer.content
    assert "only for its own git URL" in answer.json()["error"]
    assert CANARY not in answer.content.decode()
