"""Home: each project with its last build's state and time, or "never built", in one query."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from builds.models import Build
from builds.services import queue_build
from portal.models import Project

pytestmark = pytest.mark.django_db


def test_each_project_shows_its_last_build(
    project: Project, alice: Any, charlie: Any, django_assert_max_num_queries: Any
) -> None:
    other = Project.objects.create(
        team=project.team,
        name="quiet",
        git_url=project.git_url,
        ref="main",
        image="localhost:5000/alpha/quiet",
        platforms=["linux/amd64"],
        language="go",
        options={},
        created_by=alice,
    )
    first = queue_build(project, alice)
    Build.objects.filter(pk=first.pk).update(state=Build.State.FAILED)
    last = queue_build(project, alice)
    Build.objects.filter(pk=last.pk).update(state=Build.State.CANCELLED)
    for n in range(5):  # more projects cost no more queries
        Project.objects.create(
            team=project.team,
            name=f"p{n}",
            git_url=project.git_url,
            ref="main",
            image=f"localhost:5000/alpha/p{n}",
            platforms=["linux/amd64"],
            language="go",
            options={},
            created_by=alice,
        )
    client = Client()
    client.force_login(alice)
    with django_assert_max_num_queries(8):
        page = client.get("/").content.decode()
    card = page[page.index(f'data-project="{project.pk}"') :]
    card = card[: card.index("</li>")]
    assert f'href="/builds/{last.pk}/"' in card and 'class="state cancelled"' in card
    assert "ago</time>" in card
    quiet = page[page.index(f'data-project="{other.pk}"') :]
    assert "never built" in quiet[: quiet.index("</li>")]
    outsider = Client()
    outsider.force_login(charlie)
    assert "hello" not in outsider.get("/").content.decode()
