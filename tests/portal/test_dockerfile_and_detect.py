"""The team's own Dockerfile (diff, checks, save only without errors) and source detection."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from builds.models import Build
from builds.services import queue_build
from builds.worker import work_once
from fakes import FakeBackend, write_hello
from portal.models import Project

pytestmark = pytest.mark.django_db
GIT = ["git", "-c", "user.name=T", "-c", "user.email=t@example.invalid"]


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_custom_dockerfile_is_checked_diffed_saved_and_built(project: Project, alice: Any) -> None:
    client = login(alice)
    page = client.get(f"/projects/{project.pk}/Dockerfile/edit").content.decode()
    assert "FROM --platform=$BUILDPLATFORM" in page and "Same as generated." in page

    naive = (
        "FROM localhost:5000/library/golang:1.19\nCOPY . /src\nRUN cd /src && go build -o /app .\n"
    )
    check = client.post(
        f"/projects/{project.pk}/Dockerfile/edit",
        {"dockerfile": naive, "_check": "1"},
        headers={"HX-Request": "true"},
    ).content.decode()
    assert check.lstrip().startswith('<section class="card" id="check">')
    assert 'data-code="emulation"' in check and "+RUN cd /src &amp;&amp; go build" in check
    project.refresh_from_db()
    assert project.custom_dockerfile == "", "checking saves nothing"

    broken = client.post(f"/projects/{project.pk}/Dockerfile/edit", {"dockerfile": "FROM\n"})
    assert broken.status_code == 200 and 'class="finding error"' in broken.content.decode()
    project.refresh_from_db()
    assert project.custom_dockerfile == ""

    saved = client.post(f"/projects/{project.pk}/Dockerfile/edit", {"dockerfile": naive})
    assert saved.status_code == 302
    project.refresh_from_db()
    assert project.custom_dockerfile == naive
    assert "custom" in client.get(f"/projects/{project.pk}/").content.decode()

    build = queue_build(project, alice)
    backend = FakeBackend()
    work_once("w1", backend)
    assert backend.dockerfile == naive
    assert Build.objects.get(pk=build.pk).dockerfile == naive

    client.post(f"/projects/{project.pk}/Dockerfile/edit", {"reset": "1"})
    project.refresh_from_db()
    assert project.custom_dockerfile == ""


def test_other_teams_cannot_see_or_edit_the_dockerfile(project: Project, charlie: Any) -> None:
    client = login(charlie)
    assert client.get(f"/projects/{project.pk}/Dockerfile/edit").status_code == 404
    assert (
        client.post(
            f"/projects/{project.pk}/Dockerfile/edit", {"dockerfile": "FROM x\n"}
        ).status_code
        == 404
    )
    project.refresh_from_db()
    assert project.custom_dockerfile == ""


@pytest.fixture
def go_repo(tmp_path: Path, settings: Any) -> str:
    settings.PORTAL_GIT_FILE_ROOTS = [str(tmp_path)]
    path = tmp_path / "svc"
    write_hello(path / "cmd" / "hello")
    (path / "go.mod").write_text("module example.com/svc\n\ngo 1.19\n")
    (path / "cmd" / "hello" / "go.mod").unlink()
    subprocess.run([*GIT, "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run([*GIT, "-C", str(path), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-q", "-m", "x"], check=True)
    return f"file://{path}"


def test_detect_api_reads_the_source(go_repo: str, alice: Any, api: Any) -> None:
    response = api(alice).post(
        "/api/v1/detect", {"team": "alpha", "git_url": go_repo, "ref": "main"}
    )
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["language"] == "go"
    assert data["options"]["main"] == "./cmd/hello"
    assert any("go.mod" in line for line in data["evidence"])
    assert len(data["commit"]) == 40


def test_detect_refuses_bad_input(alice: Any, api: Any, tmp_path: Path, settings: Any) -> None:
    client = api(alice)
    assert (
        client.post("/api/v1/detect", {"team": "alpha", "git_url": "ext::sh -c id"}).status_code
        == 400
    )
    assert client.post("/api/v1/detect", {"team": "alpha", "git_url": 5}).status_code == 400
    assert (
        client.post("/api/v1/detect", {"git_url": "https://git.example.invalid/x"}).status_code
        == 400
    )
    settings.PORTAL_GIT_FILE_ROOTS = [str(tmp_path / "allowed")]
    refused = client.post(
        "/api/v1/detect", {"team": "alpha", "git_url": "file:///etc", "ref": "main"}
    )
    # Refused before any fetch, like every destination the portal does not go to.
    assert refused.status_code == 400 and "PORTAL_GIT_FILE_ROOTS" in refused.json()["error"]


def test_the_registration_form_fills_itself_from_detection(go_repo: str, alice: Any) -> None:
    html = (
        login(alice)
        .post(
            "/projects/new/detect",
            {"team": "alpha", "git_url": go_repo, "ref": "main"},
            headers={"HX-Request": "true"},
        )
        .content.decode()
    )
    assert "Detected: go" in html
    assert 'id="plugin-options" hx-swap-oob="true"' in html
    assert 'name="opt_main" value="./cmd/hello"' in html
    assert 'id="language-field" hx-swap-oob="true"' in html and 'value="go" selected' in html


def test_detect_is_only_for_team_members(go_repo: str, alice: Any, charlie: Any, api: Any) -> None:
    """Fetching uses the portal's own git access: never for someone outside the team."""
    answer = api(charlie).post("/api/v1/detect", {"team": "alpha", "git_url": go_repo})
    assert answer.status_code == 404 and "commit" not in answer.json()
    page = login(charlie).post(
        "/projects/new/detect",
        {"team": "alpha", "git_url": go_repo},
        headers={"HX-Request": "true"},
    )
    assert page.status_code == 404
