"""/metrics: Prometheus text (parsed back with prometheus-client's own parser), counted from the
database and the shared cache, and reachable only from the allowed addresses or with the token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from builds.models import Build, BuilderNode, BuildPlatform
from portal.models import Project

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    cache.clear()


def scrape(client: Client | None = None, **extra: Any) -> dict[tuple[str, tuple[Any, ...]], float]:
    response = (client or Client()).get("/metrics", **extra)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _finished(project: Project, alice: Any, strategy: str, seconds: int, wait: int) -> Build:
    now = timezone.now()
    build = Build.objects.create(
        project=project,
        state=Build.State.SUCCEEDED,
        ref="main",
        requested_by=alice,
        strategy=strategy,
        created_at=now - timedelta(seconds=seconds + wait),
        started_at=now - timedelta(seconds=seconds),
        finished_at=now,
    )
    for platform, method in (("linux/amd64", "native"), ("linux/arm64", "emulated")):
        BuildPlatform.objects.create(
            build=build,
            platform=platform,
            state=BuildPlatform.State.DONE,
            method=method,
            started_at=build.started_at,
            finished_at=build.started_at + timedelta(seconds=seconds if method != "native" else 20),
        )
    return build


def test_builds_queue_durations_and_nodes(
    project: Project, alice: Any, local_node: BuilderNode, queued_build: Build
) -> None:
    Build.objects.filter(pk=queued_build.pk).update(
        created_at=timezone.now() - timedelta(minutes=3)
    )
    _finished(project, alice, "auto", seconds=100, wait=3)
    _finished(project, alice, "emulate", seconds=400, wait=40)
    BuilderNode.objects.create(name="sick", endpoint="unix:///nowhere.sock", reachable=False)

    m = scrape()
    assert m[("crossport_builds", (("state", "queued"), ("team", "alpha")))] == 1
    assert m[("crossport_builds", (("state", "succeeded"), ("team", "alpha")))] == 2
    assert m[("crossport_queue_length", ())] == 1
    assert 179 <= m[("crossport_queue_oldest_seconds", ())] < 240
    # Waits of 3 s and 40 s: one in the 5 s bucket, both by 60 s.
    assert m[("crossport_queue_wait_seconds_bucket", (("le", "5.0"),))] == 1
    assert m[("crossport_queue_wait_seconds_bucket", (("le", "60.0"),))] == 2
    assert m[("crossport_queue_wait_seconds_count", ())] == 2
    assert m[("crossport_queue_wait_seconds_sum", ())] == pytest.approx(43, abs=0.01)
    arm = (("platform", "linux/arm64"), ("strategy", "emulate"))
    assert m[("crossport_build_platform_seconds_bucket", (("le", "300.0"), *arm))] == 0
    assert m[("crossport_build_platform_seconds_bucket", (("le", "600.0"), *arm))] == 1
    assert m[("crossport_build_platform_seconds_sum", arm)] == pytest.approx(400)
    amd = (("platform", "linux/amd64"), ("strategy", "auto"))
    assert m[("crossport_build_platform_seconds_bucket", (("le", "30.0"), *amd))] == 1
    # Emulated against native seconds: what an emulation-heavy team costs.
    assert m[("crossport_platform_build_seconds_total", (("method", "emulated"),))] == 500
    assert m[("crossport_platform_build_seconds_total", (("method", "native"),))] == 40
    assert m[("crossport_node_up", (("node", "local"),))] == 1
    assert m[("crossport_node_up", (("node", "sick"),))] == 0
    assert m[("crossport_node_running_builds", (("node", "local"),))] == 0


def test_failures_and_watchers_are_counted_across_the_cache(alice: Any) -> None:
    client = Client()
    for _ in range(3):
        client.post("/login/", {"username": "alice", "password": "wrong"})
    Client().get("/api/v1/projects", headers={"Authorization": "Bearer nope"})
    m = scrape()
    assert m[("crossport_login_failures_total", ())] == 3
    assert m[("crossport_token_failures_total", ())] == 1
    assert m[("crossport_websocket_watchers", ())] == 0


def test_only_allowed_addresses_or_the_token(settings: Any) -> None:
    import ipaddress

    assert Client().get("/metrics").status_code == 200  # the test client is 127.0.0.1
    elsewhere = {"REMOTE_ADDR": "203.0.113.7"}
    assert Client().get("/metrics", **elsewhere).status_code == 404
    settings.PORTAL_METRICS_TOKEN = "s3cret-scrape-token"
    bad = {"HTTP_AUTHORIZATION": "Bearer s3cret-scrape-tokeN"}
    assert Client().get("/metrics", **elsewhere, **bad).status_code == 404
    good = {"HTTP_AUTHORIZATION": "Bearer s3cret-scrape-token"}
    assert Client().get("/metrics", **elsewhere, **good).status_code == 200
    settings.PORTAL_METRICS_ALLOW = [ipaddress.ip_network("203.0.113.0/24")]
    assert Client().get("/metrics", **elsewhere).status_code == 200
    assert Client().get("/metrics").status_code == 404  # loopback is no longer listed
    mapped = {"REMOTE_ADDR": "::ffff:203.0.113.9"}
    assert Client().get("/metrics", **mapped).status_code == 200
