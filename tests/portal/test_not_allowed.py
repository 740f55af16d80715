"""A refusal never tells whose a repository is (issue: Hardening, neutral messages).

charlie (team beta, image prefix localhost:5000/beta) gets one message for a repository alpha's
project builds and for one outside beta's prefix, wherever he names it; and what belongs to
another team answers as an unknown one does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from builds.models import ManifestRecord
from portal.access import NOT_ALLOWED
from portal.models import Project, Team

# alpha's project builds the first (inside beta's prefix: registered before beta had one);
# the second is nobody's, but outside beta's prefix; the third is alpha's and outside it.
REPOSITORIES = {
    "alphas_inside_the_prefix": "localhost:5000/beta/shared",
    "outside_the_prefix": "localhost:5000/gamma/app",
    "alphas_outside_the_prefix": "localhost:5000/alpha/hello",
}


@pytest.fixture
def scene(project: Project, alpha: Team, beta: Team, charlie: Any) -> Any:
    Project.objects.create(
        team=alpha,
        name="shared",
        git_url=project.git_url,
        image=REPOSITORIES["alphas_inside_the_prefix"],
        language="go",
    )
    beta.image_prefix = "localhost:5000/beta"
    beta.save()
    return charlie


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _api_project(api: Any, user: Any, repository: str) -> str:
    body = {
        "team": "beta",
        "name": "mine",
        "language": "go",
        "git_url": "https://git.example.com/beta/mine.git",
        "image": repository,
        "platforms": ["linux/amd64"],
    }
    return api(user).post("/api/v1/projects", body).json()["fields"]["image"][0]["message"]


def _page_project(api: Any, user: Any, repository: str) -> str:
    form = {
        "team": "beta",
        "name": "mine",
        "language": "go",
        "git_url": "https://git.example.com/beta/mine.git",
        "image": repository,
        "platforms": "linux/amd64",
    }
    return _page(user).post("/projects/new/", form).context["form"].errors["image"][0]


def _api_merge_target(api: Any, user: Any, repository: str) -> str:
    body = {"team": "beta", "target": f"{repository}:v1", "sources": ["localhost:5000/beta/a"]}
    return api(user).post("/api/v1/merges", body).json()["error"]


def _api_merge_source(api: Any, user: Any, repository: str) -> str:
    body = {"team": "beta", "target": "localhost:5000/beta/m:v1", "sources": [f"{repository}:a"]}
    return api(user).post("/api/v1/merges", body | {"dry_run": True}).json()["error"]


def _page_merge_target(api: Any, user: Any, repository: str) -> str:
    form = {"target": f"{repository}:v1", "sources": "localhost:5000/beta/a"}
    return _page(user).post("/teams/beta/merge/", form).context["error"]


def _page_merge_source(api: Any, user: Any, repository: str) -> str:
    form = {"target": "localhost:5000/beta/m:v1", "sources": f"{repository}:a"}
    return _page(user).post("/teams/beta/merge/", form).context["error"]


WHERE: dict[str, Callable[[Any, Any, str], str]] = {
    "api_project": _api_project,
    "page_project": _page_project,
    "api_merge_target": _api_merge_target,
    "api_merge_source": _api_merge_source,
    "page_merge_target": _page_merge_target,
    "page_merge_source": _page_merge_source,
}


@pytest.mark.parametrize("where", WHERE)
def test_one_neutral_message_whoever_builds_the_repository(
    api: Any, scene: Any, where: str
) -> None:
    said = {name: WHERE[where](api, scene, repo) for name, repo in REPOSITORIES.items()}
    assert len(set(said.values())) == 1, said
    assert "alpha" not in said["alphas_inside_the_prefix"]
    assert "Alpha" not in said["alphas_inside_the_prefix"]
    assert said["outside_the_prefix"] == NOT_ALLOWED
    assert not ManifestRecord.objects.exists()
    assert not Project.objects.filter(team__slug="beta").exists()


def _alphas(project: Project) -> dict[str, str]:
    record = ManifestRecord.objects.create(
        team=project.team,
        project=project,
        reference=f"{project.image}:v1",
        digest="sha256:" + "c" * 64,
        platforms={},
    )
    return {"project": str(project.pk), "team": "alpha", "record": str(record.pk)}


UNKNOWN = {"project": "999999999", "team": "nope", "record": "999999999"}
ASKS = {  # how charlie names something of alpha's: method, path, body
    "project": ("GET", "/api/v1/projects/{project}", None),
    "project_dockerfile": ("GET", "/api/v1/projects/{project}/dockerfile", None),
    "project_builds": ("POST", "/api/v1/projects/{project}/builds", {}),
    "ledger_by_project": ("GET", "/api/v1/manifests?project={project}", None),
    "ledger_by_team": ("GET", "/api/v1/manifests?team={team}", None),
    "credentials": ("GET", "/api/v1/credentials?team={team}", None),
    "save_credential": (
        "POST",
        "/api/v1/credentials",
        {"team": "{team}", "registry": "localhost:5000", "username": "u", "password": "p"},
    ),
    "detect": ("POST", "/api/v1/detect", {"team": "{team}", "git_url": "https://x.example/r.git"}),
    "merge": ("POST", "/api/v1/merges", {"team": "{team}", "target": "a/b:1", "sources": ["a/c"]}),
    "inspect_page": ("GET", "/manifests/{record}/", None),
    "ledger_page": ("GET", "/teams/{team}/manifests/", None),
    "project_page": ("GET", "/projects/{project}/", None),
}


@pytest.mark.parametrize("ask", ASKS)
def test_another_teams_things_answer_as_unknown_ones(
    api: Any, scene: Any, project: Project, ask: str
) -> None:
    method, path, body = ASKS[ask]
    alphas = _alphas(project)

    def answer(names: dict[str, str]) -> tuple[int, bytes]:
        url = path.format(**names)
        if url.startswith("/api/"):
            data = {
                k: v.format(**names) if isinstance(v, str) else v for k, v in (body or {}).items()
            }
            client = api(scene)
            response = client.post(url, data) if method == "POST" else client.get(url)
        else:
            response = _page(scene).generic(method, url)
        return response.status_code, response.content

    theirs, unknown = answer(alphas), answer(UNKNOWN)
    assert theirs == unknown
    assert theirs[0] in (400, 404) and b"alpha" not in theirs[1].lower()
