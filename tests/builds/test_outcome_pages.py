"""What a person sees of a build's outcome, and the rebuild button and route: a failed build's
headline and failed step, cancelled in grey, the pushed result with commands to copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.test import Client

from builds.models import Build, BuildPlatform
from builds.worker import work_once
from fakes import COMMIT, INDEX_DIGEST, PLATFORM_DIGESTS, FakeBackend

GO_ERROR = Path(__file__).parent / "data" / "go-compile-error-3platforms.rawjson"


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_failed_build_page_shows_the_headline_and_failed_step(
    queued_build: Build, alice: Any
) -> None:
    work_once("w1", FakeBackend(stream=GO_ERROR.read_bytes(), exit_code=1))
    build = Build.objects.get(pk=queued_build.pk)
    page = login(alice).get(f"/builds/{build.pk}/").content.decode()
    assert 'id="build-headline"' in page
    assert "linux/arm64, step 6/8 (go build): ./main.go:4:2: undefined: nosuchfunc" in page
    assert f'data-reason-line="{build.reason_line}"' in page
    assert f'data-seq="{build.reason_line}"' in page
    assert "step 6/8 failed" in page
    assert (
        "/ 8 steps</small>" not in page.split('data-platform="linux/arm64"')[1].split("</div>")[0]
    )
    assert 'class="state cancelled"' in page  # amd64, arm/v7: stopped when arm64 failed
    assert 'id="rebuild-form"' in page


def test_cancelled_build_reads_cancelled_everywhere(queued_build: Build, alice: Any) -> None:
    client = login(alice)
    client.post(f"/builds/{queued_build.pk}/cancel")
    page = client.get(f"/builds/{queued_build.pk}/").content.decode()
    assert 'class="state cancelled" id="build-state">cancelled' in page
    assert "failed" not in page.replace("failed_step", "")
    history = client.get(f"/projects/{queued_build.project_id}/").content.decode()
    assert '<span class="state cancelled">cancelled</span>' in history


def test_succeeded_build_page_shows_what_was_pushed(queued_build: Build, alice: Any) -> None:
    work_once("w1", FakeBackend())
    build = Build.objects.get(pk=queued_build.pk)
    assert build.state == Build.State.SUCCEEDED
    page = login(alice).get(f"/builds/{build.pk}/").content.decode()
    image = "localhost:5000/alpha/hello"
    assert f"docker pull {image}@{INDEX_DIGEST}</code>" in page
    assert f"docker buildx imagetools inspect {image}:latest</code>" in page
    assert page.count('data-copy="#') == 2
    for digest in PLATFORM_DIGESTS.values():
        assert digest in page
    record = build.manifests.get()
    assert f'href="/manifests/{record.pk}/" id="ledger-link"' in page


def test_rebuild_api_queues_the_same_build(queued_build: Build, api: Any, bob: Any) -> None:
    work_once("w1", FakeBackend(stream=GO_ERROR.read_bytes(), exit_code=1))
    first = Build.objects.get(pk=queued_build.pk)
    response = api(bob).post(f"/api/v1/builds/{first.pk}/rebuild")
    assert response.status_code == 201, response.json()
    data = response.json()
    again = Build.objects.get(pk=data["id"])
    assert data["id"] != first.pk and data["state"] == "queued"
    assert data["project"] == first.project_id and data["url"].endswith(f"/builds/{again.pk}/")
    assert again.ref == COMMIT  # the same commit, whatever the branch has now
    assert again.tags == first.tags and again.strategy == first.strategy
    assert again.requested_by == bob
    assert set(again.platform_states.values_list("state", flat=True)) == {
        BuildPlatform.State.PENDING
    }


def test_rebuild_is_for_the_team_only(queued_build: Build, api: Any, charlie: Any) -> None:
    assert api(charlie).post(f"/api/v1/builds/{queued_build.pk}/rebuild").status_code == 404
    assert login(charlie).post(f"/builds/{queued_build.pk}/rebuild").status_code == 404
    assert Build.objects.count() == 1


def test_rebuild_button_posts_with_csrf(queued_build: Build, alice: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(f"/builds/{queued_build.pk}/rebuild").status_code == 403
    page = strict.get(f"/builds/{queued_build.pk}/").content.decode()
    token = page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    response = strict.post(f"/builds/{queued_build.pk}/rebuild", {"csrfmiddlewaretoken": token})
    again = Build.objects.exclude(pk=queued_build.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/builds/{again.pk}/"
    assert again.ref == "main"  # never fetched: its ref, as asked
