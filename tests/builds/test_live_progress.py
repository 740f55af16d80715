"""While a build runs, each platform records the step BuildKit is on (the page's card shows it,
and a reload shows the same); once pushed, each platform's compressed image size."""

from __future__ import annotations

from typing import Any

import pytest

from builds.models import Build, BuildPlatform
from builds.worker import work_once
from fakes import IMAGE_SIZE, FakeBackend

pytestmark = pytest.mark.django_db


def test_the_current_step_then_the_size(queued_build: Build, alice: Any, api: Any) -> None:
    seen: dict[str, set[str]] = {}

    def during(n: int) -> None:
        for platform, step in BuildPlatform.objects.values_list("platform", "step"):
            if step:
                seen.setdefault(platform, set()).add(step)

    work_once("w1", FakeBackend(on_chunk=during))
    queued_build.refresh_from_db()
    assert queued_build.state == Build.State.SUCCEEDED
    assert set(seen) == set(queued_build.platforms)
    for steps in seen.values():
        assert len(steps) > 1, steps  # it moved on from step to step
    assert any("go build" in step for steps in seen.values() for step in steps), seen
    rows = BuildPlatform.objects.filter(build=queued_build)
    assert [row.size_bytes for row in rows] == [IMAGE_SIZE] * rows.count()
    answer = api(alice).get(f"/api/v1/builds/{queued_build.pk}").json()
    platforms = answer["platforms"]
    sizes = [
        p["size_bytes"] for p in (platforms.values() if isinstance(platforms, dict) else platforms)
    ]
    assert sizes == [IMAGE_SIZE] * rows.count()
    page = api(alice).client
    page.force_login(alice)
    html = page.get(f"/builds/{queued_build.pk}/").content.decode()
    assert "4.5\xa0MB" in html  # filesizeformat of the fake size, per platform
