"""PORTAL_TEAM_MAX_BUILDS: a team runs at most that many builds at once; its other builds wait
while other teams' builds start, and start as soon as one of its own ends."""

from __future__ import annotations

from typing import Any

import pytest

from builds.models import Build, BuilderNode
from builds.services import queue_build
from builds.worker import claim_next
from portal.models import Membership, Project, Team

pytestmark = pytest.mark.django_db


def _project(team: Team, name: str, user: Any) -> Project:
    return Project.objects.create(
        team=team,
        name=name,
        git_url="https://git.example.com/x.git",
        ref="main",
        image=f"localhost:5000/{team.slug}/{name}",
        platforms=["linux/amd64"],
        language="go",
        options={},
        created_by=user,
    )


def test_a_team_at_its_limit_waits_and_others_go_first(
    alpha: Team, beta: Team, alice: Any, charlie: Any, local_node: BuilderNode, settings: Any
) -> None:
    settings.PORTAL_TEAM_MAX_BUILDS = 2
    BuilderNode.objects.filter(pk=local_node.pk).update(max_builds=10)
    Membership.objects.filter(user=charlie).update(role=Membership.Role.ADMIN)
    alphas = [queue_build(_project(alpha, f"a{n}", alice), alice) for n in range(4)]
    late = queue_build(_project(beta, "b0", charlie), charlie)  # queued after all of alpha's
    claimed = [claim_next(f"w{n}") for n in range(4)]
    ids = [b.pk for b in claimed if b is not None]
    # beta's build does not wait behind alpha's queue (the team with fewer running goes
    # first), and alpha stops at two.
    assert ids == [alphas[0].pk, late.pk, alphas[1].pk] and claimed[3] is None
    Build.objects.filter(pk=alphas[0].pk).update(state=Build.State.SUCCEEDED)
    assert claim_next("w5").pk == alphas[2].pk  # type: ignore[union-attr]


def test_no_limit_by_default(alpha: Team, alice: Any, local_node: BuilderNode) -> None:
    BuilderNode.objects.filter(pk=local_node.pk).update(max_builds=10)
    builds = [queue_build(_project(alpha, f"a{n}", alice), alice) for n in range(4)]
    assert [claim_next(f"w{n}").pk for n in range(4)] == [b.pk for b in builds]  # type: ignore[union-attr]


def test_a_team_whose_builds_end_quickly_does_not_keep_the_others_waiting(
    alpha: Team, beta: Team, alice: Any, charlie: Any, local_node: BuilderNode
) -> None:
    """Both teams have nothing running each time a worker looks (alpha's builds end at once):
    the team that started a build least recently goes first, so beta is not starved by
    alpha's older queue."""
    gamma = Team.objects.create(slug="gamma", name="Gamma")
    Membership.objects.create(user=charlie, team=gamma, role=Membership.Role.ADMIN)
    for n in range(3):
        queue_build(_project(alpha, f"a{n}", alice), alice)
    for team in (beta, gamma):
        queue_build(_project(team, "x", charlie), charlie)
    started = []
    for n in range(5):
        build = claim_next(f"w{n}")
        assert build is not None
        started.append(build.project.team.slug)
        Build.objects.filter(pk=build.pk).update(state=Build.State.FAILED)  # ends at once
    assert started == ["alpha", "beta", "gamma", "alpha", "alpha"]
