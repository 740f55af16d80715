"""API v1: projects, builds, logs, manifests; tokens; bad input changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from builds.buildlog import BuildLog
from builds.models import Build
from builds.worker import work_once
from fakes import INDEX_DIGEST, PLATFORM_DIGESTS, FakeBackend
from portal.access import NOT_ALLOWED
from portal.models import ApiToken, Project

pytestmark = pytest.mark.django_db

GOOD = {
    "team": "alpha",
    "name": "hello",
    "language": "go",
    "git_url": "file:///srv/git/hello.git",
    "ref": "main",
    "image": "localhost:5000/alpha/hello",
    "platforms": ["linux/amd64", "aarch64", "linux/arm/v7"],
    "options": {"ldflags": "-s -w -X main.version=1.0"},
}


def test_create_project_and_read_it_back(alice: Any, api: Any) -> None:
    client = api(alice)
    response = client.post("/api/v1/projects", GOOD)
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["platforms"] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    assert data["options"]["ldflags"] == "-s -w -X main.version=1.0"
    assert data["registry_cache"] is True  # on unless asked otherwise
    assert client.get(f"/api/v1/projects/{data['id']}").json()["name"] == "hello"
    assert [p["id"] for p in client.get("/api/v1/projects").json()["projects"]] == [data["id"]]
    dockerfile = client.get(f"/api/v1/projects/{data['id']}/dockerfile")
    assert dockerfile["Content-Type"].startswith("text/plain")
    assert 'ARG LDFLAGS="-s -w -X main.version=1.0"' in dockerfile.content.decode()


def test_a_project_can_be_registered_without_the_registry_cache(alice: Any, api: Any) -> None:
    response = api(alice).post("/api/v1/projects", {**GOOD, "registry_cache": False})
    assert response.status_code == 201 and response.json()["registry_cache"] is False
    assert Project.objects.get(pk=response.json()["id"]).registry_cache is False


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("image", "localhost:5000/Alpha/hello", "image"),
        ("image", "localhost:5000/alpha/hello:latest", "image"),
        ("image", "-localhost/x", "image"),
        ("platforms", ["linux/mips99"], "platforms"),
        ("platforms", ["linux/amd64/v9"], "platforms"),
        ("platforms", [], "platforms"),
        ("git_url", "-uhttps://example.invalid/x.git", "git_url"),
        ("git_url", "ext::sh -c touch% /tmp/pwned", "git_url"),
        ("git_url", "http://example.invalid/x.git", "git_url"),
        ("ref", "--upload-pack=touch", "ref"),
        ("name", "x" * 65, "name"),
        ("name", "bad name", "name"),
        ("team", "beta", "team"),
        ("language", "cobol", "language"),
    ],
)
def test_bad_project_input_is_refused_and_changes_nothing(
    alice: Any, api: Any, field: str, value: Any, message: str
) -> None:
    response = api(alice).post("/api/v1/projects", {**GOOD, field: value})
    assert response.status_code == 400
    assert field in response.json()["fields"], response.json()
    assert not Project.objects.exists()


@pytest.mark.parametrize(
    "options",
    [{"ldflags": "-s\nRUN rm -rf /"}, {"ldflags": "a\x00b"}, {"main": "-o=/etc"}, {"nope": "1"}],
)
def test_bad_options_name_the_option(alice: Any, api: Any, options: dict[str, str]) -> None:
    response = api(alice).post("/api/v1/projects", {**GOOD, "options": options})
    assert response.status_code == 400
    # The plugin names it; a NUL no field may hold is refused with the body, named there.
    errors = str(response.json().get("fields", {}).get("__all__") or response.json()["error"])
    assert next(iter(options)) in errors
    assert not Project.objects.exists()


def test_queue_build_then_read_state_log_and_manifest(
    project: Project, alice: Any, api: Any
) -> None:
    client = api(alice)
    response = client.post(f"/api/v1/projects/{project.pk}/builds", {"tags": ["v1", "latest"]})
    assert response.status_code == 201
    build_id = response.json()["id"]
    assert client.get(f"/api/v1/builds/{build_id}").json()["state"] == "queued"

    work_once("w1", FakeBackend())
    data = client.get(f"/api/v1/builds/{build_id}").json()
    assert data["state"] == "succeeded"
    assert data["manifest"]["digest"] == INDEX_DIGEST
    assert data["manifest"]["platforms"] == PLATFORM_DIGESTS
    assert data["platforms"]["linux/arm64"]["digest"] == PLATFORM_DIGESTS["linux/arm64"]

    log = client.get(f"/api/v1/builds/{build_id}/log").json()
    seqs = [line["seq"] for line in log["lines"]]
    assert seqs == list(range(1, len(seqs) + 1)) and log["next"] == seqs[-1]
    tail = client.get(f"/api/v1/builds/{build_id}/log?after={seqs[-3]}").json()
    assert [line["seq"] for line in tail["lines"]] == seqs[-2:]
    assert client.get(f"/api/v1/builds/{build_id}/log?after=x").status_code == 400

    ledger = client.get(f"/api/v1/manifests?project={project.pk}").json()["manifests"]
    assert sorted(m["tag"] for m in ledger) == [
        "localhost:5000/alpha/hello:latest",
        "localhost:5000/alpha/hello:v1",
    ]
    assert all(m["digest"] == INDEX_DIGEST and m["platforms"] == PLATFORM_DIGESTS for m in ledger)


@pytest.mark.parametrize(
    "body",
    [
        {"tags": ["bad tag"]},
        {"tags": ["-x"]},
        {"tags": "latest"},
        {"tags": [".x"]},
        {"ref": "a..b"},
        {"ref": 5},
        {"tags": ["x" * 129]},
        {"what": 1},
    ],
)
def test_bad_build_input_is_refused(
    project: Project, alice: Any, api: Any, body: dict[str, Any]
) -> None:
    response = api(alice).post(f"/api/v1/projects/{project.pk}/builds", body)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]
    assert not Build.objects.exists()


def test_other_teams_get_404_everywhere(
    project: Project, queued_build: Build, charlie: Any, api: Any
) -> None:
    client = api(charlie)
    for path in [
        f"/api/v1/projects/{project.pk}",
        f"/api/v1/projects/{project.pk}/dockerfile",
        f"/api/v1/builds/{queued_build.pk}",
        f"/api/v1/builds/{queued_build.pk}/log",
        f"/api/v1/manifests?project={project.pk}",
    ]:
        assert client.get(path).status_code == 404, path
    assert client.post(f"/api/v1/projects/{project.pk}/builds").status_code == 404
    assert client.post(f"/api/v1/builds/{queued_build.pk}/cancel").status_code == 404
    assert client.get("/api/v1/projects").json()["projects"] == []
    assert Build.objects.get().state == "queued" and Build.objects.count() == 1


def test_tokens_authenticate_until_revoked(alice: Any, api: Any) -> None:
    client = api(alice)
    assert client.get("/api/v1/projects").status_code == 200
    ApiToken.objects.get(user=alice).revoke()
    response = client.get("/api/v1/projects")
    assert response.status_code == 401 and "WWW-Authenticate" in response
    client.headers = {"Authorization": "Bearer cp_not-a-token"}
    assert client.get("/api/v1/projects").status_code == 401
    assert client.client.get("/api/v1/projects").status_code == 401


def test_log_lines_are_ordered_with_platforms(queued_build: Build, alice: Any, api: Any) -> None:
    BuildLog(queued_build).write([("linux/arm64", 1, "a"), (None, 0, "b")])
    lines = api(alice).get(f"/api/v1/builds/{queued_build.pk}/log").json()["lines"]
    assert lines == [
        {"seq": 1, "platform": "linux/arm64", "stream": 1, "text": "a"},
        {"seq": 2, "platform": None, "stream": 0, "text": "b"},
    ]


def test_a_password_in_the_git_url_is_refused_and_never_echoed(alice: Any, api: Any) -> None:
    response = api(alice).post(
        "/api/v1/projects", {**GOOD, "git_url": "https://bob:canary-pw-123@git.example.com/x.git"}
    )
    assert response.status_code == 400
    assert "canary-pw-123" not in response.content.decode()
    assert "git_url" in response.json()["fields"]
    assert not Project.objects.exists()


def test_a_team_pushes_only_below_its_image_prefix(alice: Any, api: Any, alpha: Any) -> None:
    alpha.image_prefix = "localhost:5000/alpha/"
    alpha.save()
    response = api(alice).post("/api/v1/projects", {**GOOD, "image": "localhost:5000/beta/app"})
    assert response.status_code == 400
    assert response.json()["fields"]["image"][0]["message"] == NOT_ALLOWED
    assert api(alice).post("/api/v1/projects", GOOD).status_code == 201


def test_tag_templates_are_validated_and_stored(alice: Any, api: Any) -> None:
    client = api(alice)
    bad = client.post("/api/v1/projects", {**GOOD, "tags": ["{nope}"]})
    assert bad.status_code == 400 and "tags" in bad.json()["fields"]
    assert not Project.objects.exists()
    good = client.post(
        "/api/v1/projects", {**GOOD, "tags": ["{semver}", "{branch}"], "immutable_tags": True}
    )
    assert good.status_code == 201, good.json()
    assert good.json()["tags"] == ["{semver}", "{branch}"] and good.json()["immutable_tags"] is True


def test_a_repository_belongs_to_one_teams_projects(
    alice: Any, charlie: Any, api: Any, alpha: Any
) -> None:
    assert api(alice).post("/api/v1/projects", GOOD).status_code == 201
    # beta has no prefix, yet alpha's repository (in any spelling of its host) is not beta's.
    for image in (GOOD["image"], GOOD["image"].replace("localhost", "LOCALHOST")):
        body = {**GOOD, "team": "beta", "image": image}
        response = api(charlie).post("/api/v1/projects", body)
        assert response.status_code == 400
        assert response.json()["fields"]["image"][0]["message"] == NOT_ALLOWED
    assert Project.objects.count() == 1
    # The team itself may keep several projects on one repository (say, two Dockerfiles).
    second = api(alice).post("/api/v1/projects", {**GOOD, "name": "hello-2"})
    assert second.status_code == 201


def test_the_prefix_host_is_compared_like_references_spell_it(alice: Any, alpha: Any) -> None:
    from portal.models import image_allowed

    assert image_allowed("registry.example.com/web/app", "Registry.Example.com/web/")
    assert image_allowed("docker.io/web/app", "index.docker.io/web")
    assert not image_allowed("registry.example.com/other/app", "Registry.Example.com/web/")


def test_image_prefix_is_compared_by_path_segment_and_rechecked_at_build(
    alice: Any, api: Any, alpha: Any, project: Project
) -> None:
    alpha.image_prefix = "localhost:5000/alpha"
    alpha.save()
    sibling = api(alice).post(
        "/api/v1/projects", {**GOOD, "name": "x", "image": "localhost:5000/alphabet/x"}
    )
    assert sibling.status_code == 400
    alpha.image_prefix = "localhost:5000/other"
    alpha.save()
    response = api(alice).post(f"/api/v1/projects/{project.pk}/builds", {})
    assert response.status_code == 400 and response.json()["error"] == NOT_ALLOWED
    assert not Build.objects.exists()
