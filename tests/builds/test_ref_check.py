"""A ref the git server does not have is refused when the project is saved (the page, the
settings page and the API), asked with `git ls-remote` through the usual git path; a server
that cannot be asked does not block the save."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from fakes import write_hello
from portal.models import Project

pytestmark = pytest.mark.django_db
GIT = ["git", "-c", "user.name=T", "-c", "user.email=t@example.invalid"]


@pytest.fixture
def repo(tmp_path: Path, settings: Any) -> str:
    src = tmp_path / "hello"
    write_hello(src)
    subprocess.run([*GIT, "init", "-q", "-b", "main", str(src)], check=True)
    subprocess.run([*GIT, "-C", str(src), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(src), "commit", "-qm", "hello"], check=True)
    subprocess.run([*GIT, "-C", str(src), "tag", "v1.0.0"], check=True)
    settings.PORTAL_GIT_FILE_ROOTS = [str(tmp_path)]
    return f"file://{src}"


def _form(repo: str, ref: str, name: str = "hello2") -> dict[str, Any]:
    return {
        "team": "alpha",
        "name": name,
        "git_url": repo,
        "ref": ref,
        "image": f"localhost:5000/alpha/{name}",
        "platforms": ["linux/amd64"],
        "tags": "latest",
        "language": "go",
    }


def test_the_page_refuses_a_ref_the_repository_lacks(repo: str, alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    page = client.post("/projects/new/", _form(repo, "nosuch"))
    assert page.status_code == 200
    assert f"{repo} has no branch or tag &#x27;nosuch&#x27;" in page.content.decode()
    assert not Project.objects.filter(name="hello2").exists()
    for ref in ("main", "v1.0.0"):
        assert client.post("/projects/new/", _form(repo, ref, f"ok-{ref[0]}")).status_code == 302


def test_settings_and_the_api_refuse_it_too(repo: str, alice: Any, api: Any) -> None:
    client = Client()
    client.force_login(alice)
    assert client.post("/projects/new/", _form(repo, "main")).status_code == 302
    project = Project.objects.get(name="hello2")
    settings_form = {k: v for k, v in _form(repo, "gone").items() if k not in ("team", "name")}
    page = client.post(f"/projects/{project.pk}/settings/", settings_form | {"strategy": "auto"})
    assert page.status_code == 200 and "has no branch or tag" in page.content.decode()
    assert Project.objects.get(pk=project.pk).ref == "main"
    answer = api(alice).post("/api/v1/projects", _form(repo, "nosuch", "viaapi"))
    assert answer.status_code == 400, answer.content
    assert "has no branch or tag 'nosuch'" in answer.json()["fields"]["ref"][0]["message"]


def test_a_server_that_cannot_be_asked_does_not_block_the_save(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    form = _form("https://git.example.com/alpha/hello.git", "whatever")
    assert client.post("/projects/new/", form).status_code == 302
