"""`POST /api/v1/merges` refuses bad input before it reads or pushes anything; merges join the
team's ledger (the registry part is in tests/e2e/test_registry_auth.py)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from builds import registry
from builds.models import ManifestRecord
from portal.access import NOT_ALLOWED


@pytest.fixture
def no_registry(monkeypatch: Any) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []

    def refuse(*args: str, **kwargs: Any) -> bytes:
        calls.append(args)
        raise AssertionError("no registry call for refused input")

    monkeypatch.setattr(registry, "imagetools", refuse)
    return calls


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"target": "localhost:5000/alpha/m", "sources": ["a"]}, "give repository:tag"),
        ({"target": "localhost:5000/alpha/m@sha256:" + "a" * 64, "sources": ["a"]}, "tag"),
        ({"target": "localhost:5000/alpha/m:v1", "sources": "a"}, "sources must be a list"),
        ({"target": "localhost:5000/alpha/m:v1", "sources": []}, "list of image references"),
        (
            {"target": "localhost:5000/alpha/m:v1", "sources": ["other.io/alpha/m:amd64"]},
            "must be in the target's registry",
        ),
        (
            {"target": "localhost:5000/alpha/m:v1", "sources": ["localhost:5000/alpha/m:a"] * 2},
            "listed twice",
        ),
        (
            {
                "target": "localhost:5000/alpha/m:v1",
                "sources": ["localhost:5000/alpha/m", "localhost:5000/alpha/m:latest"],
            },
            "listed twice",
        ),
        (
            {
                "target": "localhost:5000/alpha/m:v1",
                "sources": ["localhost:5000/alpha/m:a"],
                "platforms": {"localhost:5000/alpha/m:b": "linux/arm64"},
            },
            "overrides must name given sources",
        ),
        ({"target": "localhost:5000/alpha/m:--x", "sources": ["a"]}, "Invalid image reference"),
    ],
)
def test_bad_merges_are_refused_before_the_registry(
    api: Any, alice: Any, no_registry: list[Any], body: dict[str, Any], why: str
) -> None:
    response = api(alice).post("/api/v1/merges", {"team": "alpha"} | body)
    assert response.status_code == 400 and why in response.json()["error"], response.json()
    assert no_registry == [] and not ManifestRecord.objects.exists()


def test_merges_respect_the_team_prefix_and_membership(
    api: Any, alice: Any, charlie: Any, no_registry: list[Any]
) -> None:
    alice_team = alice.teams.get()
    alice_team.image_prefix = "localhost:5000/alpha/"
    alice_team.save()
    body = {"team": "alpha", "target": "localhost:5000/beta/m:v1", "sources": ["x"]}
    response = api(alice).post("/api/v1/merges", body)
    assert response.status_code == 400 and response.json()["error"] == NOT_ALLOWED
    assert api(charlie).post("/api/v1/merges", body).status_code == 404
    # Sources too: the portal reads and copies them with its own access.
    stolen = body | {
        "target": "localhost:5000/alpha/m:v1",
        "sources": ["localhost:5000/beta/private:v1"],
    }
    response = api(alice).post("/api/v1/merges", stolen | {"dry_run": True})
    assert response.status_code == 400 and response.json()["error"] == NOT_ALLOWED


def test_a_repository_of_another_teams_project_is_neither_target_nor_source(
    api: Any, charlie: Any, project: Any, no_registry: list[Any]
) -> None:
    """beta has no image prefix, yet alpha's project repository (immutable versions and
    all) stays alpha's: beta can neither move its tags nor read its images."""
    project.immutable_tags = True
    project.save()
    own = "localhost:5000/beta/m"
    for body in (
        {"target": f"{project.image}:1.2.3", "sources": [f"{own}:amd64"]},
        {"target": f"{own}:v1", "sources": [f"{project.image}:amd64"]},
    ):
        response = api(charlie).post("/api/v1/merges", {"team": "beta"} | body)
        assert response.status_code == 400, response.json()
        assert response.json()["error"] == NOT_ALLOWED
    assert no_registry == [] and not ManifestRecord.objects.exists()


def test_registry_reference_keys_do_not_collide(api: Any, alice: Any, monkeypatch: Any) -> None:
    """app:1 and app1 are two sources (a joined key once called them the same)."""
    read: list[str] = []

    def fake_read(reference: str, ref: Any, override: Any) -> Any:
        read.append(reference)
        return merge.Source(reference, ref, "sha256:" + "0" * 64, "x")

    from builds import manual_merge as merge

    monkeypatch.setattr(merge, "read_source", fake_read)
    sources = ["localhost:5000/alpha/app:1", "localhost:5000/alpha/app1"]
    body = {"team": "alpha", "target": "localhost:5000/alpha/app:v1", "sources": sources}
    response = api(alice).post("/api/v1/merges", body | {"dry_run": True})
    assert response.status_code == 200, response.json()
    assert read == sources


def test_an_index_giving_one_platform_twice_is_refused(monkeypatch: Any) -> None:
    from builds import manual_merge as merge
    from portal.grammar import InvalidValue
    from portal.grammar.reference import parse_reference

    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": 1,
    }
    index = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry
            | {
                "digest": "sha256:" + "1" * 64,
                "platform": {"os": "linux", "architecture": "arm64"},
            },
            entry
            | {
                "digest": "sha256:" + "2" * 64,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
        ],
    }
    monkeypatch.setattr(registry, "imagetools", lambda *a, **k: json.dumps(index).encode())
    text = "localhost:5000/alpha/m:multi"
    with pytest.raises(InvalidValue, match="gives linux/arm64 twice"):
        merge.read_source(text, parse_reference(text), None)


def test_a_merge_waits_for_a_build_pushing_to_the_same_repository(
    api: Any, alice: Any, queued_build: Any, no_registry: list[Any]
) -> None:
    from builds.models import Build

    Build.objects.filter(pk=queued_build.pk).update(state=Build.State.RUNNING)
    body = {
        "team": "alpha",
        "target": f"{queued_build.project.image}:v1",
        "sources": [f"{queued_build.project.image}:amd64"],
    }
    response = api(alice).post("/api/v1/merges", body)
    assert response.status_code == 400 and "is pushing there" in response.json()["error"]
    assert no_registry == []


def test_team_ledger_lists_merges_and_builds(
    api: Any, alice: Any, charlie: Any, alpha: Any
) -> None:
    ManifestRecord.objects.create(
        kind=ManifestRecord.Kind.MERGE,
        team=alpha,
        reference="localhost:5000/alpha/m:v1",
        digest="sha256:" + "c" * 64,
        platforms={"linux/amd64": "sha256:" + "1" * 64},
        sources=[{"reference": "localhost:5000/alpha/m:amd64", "digest": "sha256:" + "1" * 64}],
        pushed_by=alice,
    )
    data = api(alice).get("/api/v1/manifests?team=alpha").json()["manifests"]
    assert [(m["kind"], m["team"], m["project"]) for m in data] == [("merge", "alpha", None)]
    assert api(charlie).get("/api/v1/manifests").json()["manifests"] == []
    from django.test import Client

    client = Client()
    client.force_login(alice)
    page = client.get("/teams/alpha/manifests/").content.decode()
    assert "localhost:5000/alpha/m:v1" in page and "<td>merge</td>" in page
    exported = client.get("/teams/alpha/manifests/?format=csv").content.decode()
    (row,) = csv.DictReader(io.StringIO(exported))
    # A merge has no project: the team column ties it to its team.
    assert (row["kind"], row["team"], row["project"]) == ("merge", "alpha", "")
    assert row["sources"] == "localhost:5000/alpha/m:amd64"
    record = ManifestRecord.objects.get()
    detail = client.get(f"/manifests/{record.pk}/").content.decode()
    assert "Merged from" in detail and "localhost:5000/alpha/m:amd64" in detail


def test_another_spelling_of_the_registry_is_the_same_repository(
    api: Any, charlie: Any, project: Any, no_registry: list[Any]
) -> None:
    project.immutable_tags = True
    project.save()
    target = project.image.replace("localhost:5000", "LOCALHOST:5000") + ":1.2.3"
    body = {"team": "beta", "target": target, "sources": ["localhost:5000/beta/m:a"]}
    response = api(charlie).post("/api/v1/merges", body)
    assert response.status_code == 400 and response.json()["error"] == NOT_ALLOWED


def test_a_team_keeps_its_repository_when_another_team_registered_it_too(
    api: Any, alice: Any, charlie: Any, project: Any, beta: Any, monkeypatch: Any
) -> None:
    """Projects made before images were unique across teams: each team keeps reaching its
    own repository; neither locks the other out."""
    from builds import manual_merge as merge
    from portal.models import Project

    Project.objects.create(
        team=beta, name="copy", git_url=project.git_url, image=project.image, language="go"
    )
    monkeypatch.setattr(
        merge,
        "read_source",
        lambda text, ref, override: merge.Source(text, ref, "sha256:" + "0" * 64, "x"),
    )
    for user, team in ((alice, "alpha"), (charlie, "beta")):
        body = {"team": team, "target": f"{project.image}:v1", "sources": [f"{project.image}:a"]}
        response = api(user).post("/api/v1/merges", body | {"dry_run": True})
        assert response.status_code == 200, response.json()
