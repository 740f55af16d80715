"""Shared fixtures: personas (alice admin and bob member of team "alpha", charlie of "beta"),
a Go project of alpha, API clients, and the fake build backend (the one seam for unit tests)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from builds.models import Build, BuilderNode
from portal.models import ApiToken, Membership, Project, Team


@pytest.fixture(scope="session", autouse=True)
def _static_files() -> None:
    """The pages name their static files by hashed name (whitenoise's manifest storage), so
    the files are collected once, as `manage.py serve` does at start."""
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)


@pytest.fixture(autouse=True)
def _isolated_settings(
    settings: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[None]:
    settings.PORTAL_WORKSPACE_DIR = tmp_path / "workspaces"
    settings.PORTAL_BASE_IMAGE_MIRROR = "localhost:5000/library"
    # As the test stack does for its own registry: nothing else internal is allowed.
    settings.PORTAL_OUTBOUND_ALLOW = ["localhost:5000"]
    # Where the test projects' file:// repositories live (tests that check refusals narrow it).
    settings.PORTAL_GIT_FILE_ROOTS = ["/srv/git"]
    # The stack's own BuildKit registry settings (scripts/teststack.sh env) stay out of unit tests.
    settings.PORTAL_BUILDKIT_REGISTRY_CA = {}
    settings.PORTAL_BUILDKIT_HTTP_REGISTRIES = []
    if request.node.get_closest_marker("e2e") is None:
        # Unit tests start from the settings' default; end-to-end ones run the stack's image.
        settings.PORTAL_BUILDKIT_IMAGE = "moby/buildkit:buildx-stable-1"
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    # Each test starts with an empty cache, in the scale-out run too, where the cache is a
    # Redis that other runs may share.
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": prefix}}
    if settings.REDIS_URL:
        # The scale-out run exercises channels-redis itself, on a prefix of its own.
        settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = prefix
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    yield
    _close_cache_connections()


def _close_cache_connections() -> None:
    """Each test's cache is a new Redis client whose pool Django never disconnects: without
    this a scale-out run leaks a socket per test, and select() fails past 1024 descriptors."""
    from django.core.cache import caches

    for cache in caches.all(initialized_only=True):
        for pool in getattr(getattr(cache, "_cache", None), "_pools", {}).values():
            pool.disconnect()


@pytest.fixture
def alpha(db: Any) -> Team:
    return Team.objects.create(slug="alpha", name="Alpha")


@pytest.fixture
def beta(db: Any) -> Team:
    return Team.objects.create(slug="beta", name="Beta")


def _user(username: str, team: Team, role: str) -> Any:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username, password=f"{username}-password-1")
    Membership.objects.create(user=user, team=team, role=role)
    return user


@pytest.fixture
def alice(alpha: Team) -> Any:
    return _user("alice", alpha, Membership.Role.ADMIN)


@pytest.fixture
def bob(alpha: Team) -> Any:
    return _user("bob", alpha, Membership.Role.MEMBER)


@pytest.fixture
def charlie(beta: Team) -> Any:
    return _user("charlie", beta, Membership.Role.MEMBER)


@pytest.fixture
def local_node(db: Any) -> BuilderNode:
    """A healthy amd64 node with arm emulators, as the unit tests' fleet (checked just now)."""
    from django.utils import timezone

    return BuilderNode.objects.create(
        name="local",
        endpoint="unix:///var/run/docker.sock",
        reachable=True,
        native_platforms=["linux/amd64"],
        emulated_platforms=["linux/arm64", "linux/arm/v7"],
        last_checked_at=timezone.now(),
    )


@pytest.fixture
def project(alpha: Team, alice: Any, local_node: BuilderNode) -> Project:
    return Project.objects.create(
        team=alpha,
        name="hello",
        git_url="file:///srv/git/hello.git",
        ref="main",
        image="localhost:5000/alpha/hello",
        platforms=["linux/amd64", "linux/arm64", "linux/arm/v7"],
        language="go",
        options={},
        created_by=alice,
    )


class Api:
    """A JSON API client holding one persona's bearer token."""

    def __init__(self, user: Any) -> None:
        self.client = Client()
        _, self.token = ApiToken.issue(user, "test")
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers)

    def post(self, path: str, data: Any = None) -> Any:
        return self.client.post(
            path,
            json.dumps(data if data is not None else {}),
            content_type="application/json",
            headers=self.headers,
        )


@pytest.fixture
def api() -> Callable[[Any], Api]:
    return Api


@pytest.fixture
def queued_build(project: Project, alice: Any) -> Build:
    from builds.services import queue_build

    return queue_build(project, alice)


@pytest.fixture
def engines(monkeypatch: Any) -> Any:
    """Every command builds/builders.py runs, answered by a fake engine (tests/fakes.py)."""
    from builds import builders
    from fakes import Engines

    fake = Engines()
    monkeypatch.setattr(builders, "docker_cli", fake)
    return fake
