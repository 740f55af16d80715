"""The project settings page: team admins change git URL/ref, platforms, language and its
options, tags and the default strategy; bad input changes nothing; members cannot."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from builds.models import BuildxBuilder
from builds.services import queue_build
from portal.models import Project

pytestmark = pytest.mark.django_db


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


FORM = {
    "git_url": "https://git.example.com/alpha/hello-moved.git",
    "ref": "release",
    "platforms": ["linux/amd64", "linux/arm/v7"],
    "tags": "{semver} latest",
    "immutable_tags": "on",
    "language": "python",
    "opt_python_version": "3.12",
    "strategy": "builder:multi",
}


def test_an_admin_changes_everything_and_builds_follow(project: Project, alice: Any) -> None:
    BuildxBuilder.objects.create(name="multi")
    client = _client(alice)
    page = client.get(f"/projects/{project.pk}/settings/").content.decode()
    assert "builder:multi" in page and 'id="dockerfile-preview"' in page
    assert "Go version" in page  # the project's own language's options, filled in
    response = client.post(f"/projects/{project.pk}/settings/", FORM)
    assert response.status_code == 302, response.content.decode()[:2000]
    project.refresh_from_db()
    assert project.git_url == FORM["git_url"] and project.ref == "release"
    assert project.platforms == ["linux/amd64", "linux/arm/v7"]
    assert project.tag_templates == ["{semver}", "latest"] and project.immutable_tags
    assert project.language == "python" and project.options["python_version"] == "3.12"
    assert project.strategy == "builder:multi"
    assert queue_build(project, alice).strategy == "builder:multi"  # the default now


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("git_url", "ftp://x/y", "git URL"),
        ("ref", "--upload-pack=evil", "ref"),
        ("platforms", ["linux/s390x x"], "platform"),
        ("strategy", "builder:nosuch", "valid choice"),
        ("opt_python_version", "3.12; rm -rf /", "version"),
    ],
)
def test_bad_input_changes_nothing(
    project: Project, alice: Any, field: str, value: Any, error: str
) -> None:
    before = Project.objects.filter(pk=project.pk).values().get()
    response = _client(alice).post(f"/projects/{project.pk}/settings/", FORM | {field: value})
    assert response.status_code == 200
    assert error.lower() in response.content.decode().lower()
    assert Project.objects.filter(pk=project.pk).values().get() == before


def test_members_and_outsiders_cannot(project: Project, bob: Any, charlie: Any) -> None:
    assert _client(bob).get(f"/projects/{project.pk}/settings/").status_code == 403
    assert _client(bob).post(f"/projects/{project.pk}/settings/", FORM).status_code == 403
    assert _client(charlie).get(f"/projects/{project.pk}/settings/").status_code == 404
    assert Project.objects.get(pk=project.pk).git_url == project.git_url
    assert "settings-link" not in _client(bob).get(f"/projects/{project.pk}/").content.decode()


def test_the_preview_after_a_language_switch_renders_the_new_language(
    project: Project, alice: Any
) -> None:
    # The page posts its preview while the option fields are still Go's: the preview uses
    # only the new language's options, not an error about Go's.
    stale = FORM | {"language": "python", "opt_ldflags": "-s -w", "opt_go": "1.19", "_preview": "1"}
    stale.pop("opt_python_version")
    page = (
        _client(alice)
        .post(f"/projects/{project.pk}/settings/", stale, headers={"HX-Request": "true"})
        .content.decode()
    )
    assert "python plugin" in page and 'id="preview-error"' not in page
    page = _client(alice).post("/projects/new/", stale, headers={"HX-Request": "true"})
    assert "python plugin" in page.content.decode()
