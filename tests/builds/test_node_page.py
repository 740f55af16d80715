"""The builder nodes page (/nodes/): who sees it, what it shows, and its buttons."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission
from django.test import Client

from builds.models import Build, BuilderNode, BuildPlatform


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _staff(user: Any, *codenames: str) -> Any:
    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


def test_people_without_the_node_permission_are_refused_not_crashed(
    alice: Any, bob: Any, local_node: BuilderNode
) -> None:
    anonymous = Client().get("/nodes/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    assert _client(bob).get("/nodes/").status_code == 403
    assert "Builder nodes" not in _client(bob).get("/").content.decode()
    staff_only = _staff(alice)  # staff, but no permission on nodes
    assert _client(staff_only).get("/nodes/").status_code == 403
    assert "/nodes/" not in _client(staff_only).get("/").content.decode()
    refused = _client(bob).post(f"/nodes/{local_node.pk}/", {"action": "disable"})
    assert refused.status_code == 403
    local_node.refresh_from_db()
    assert local_node.enabled


def test_the_page_shows_each_nodes_health_and_work(queued_build: Build, alice: Any) -> None:
    node = BuilderNode.objects.get(name="local")
    node.engine_version, node.buildkit_version = "26.1.5+dfsg1", "v0.0.0+unknown"
    node.native_platforms, node.emulated_platforms = ["linux/amd64"], ["linux/arm64"]
    node.save()
    node.reserved_for.add(queued_build.project.team)
    Build.objects.filter(pk=queued_build.pk).update(state=Build.State.RUNNING)
    BuildPlatform.objects.filter(build=queued_build).update(node=node)
    BuilderNode.objects.create(
        name="far", endpoint="ssh://ci@far.example", reachable=False, enabled=False
    )
    viewer = _staff(alice, "view_buildernode")
    page = _client(viewer).get("/nodes/").content.decode()
    assert 'href="/nodes/"' in page  # the header links the page
    assert "bundled with Docker 26.1.5+dfsg1" in page and "v0.0.0" not in page
    assert "linux/arm64" in page and "alpha" in page
    assert f'href="/builds/{queued_build.pk}/"' in page and "1 of 2" in page
    assert "unknown" in page and "disabled" in page
    assert "Check</button>" not in page  # buttons need the change permission
    assert "/admin/builds/buildernode/" in page


def test_disable_and_enable_change_only_enabled(alice: Any, local_node: BuilderNode) -> None:
    staff = _client(_staff(alice, "view_buildernode", "change_buildernode"))
    page = staff.get("/nodes/").content.decode()
    assert 'data-confirm="Disable local?' in page and "Check</button>" in page
    response = staff.post(f"/nodes/{local_node.pk}/", {"action": "disable"}, follow=True)
    local_node.refresh_from_db()
    assert not local_node.enabled and "local disabled" in response.content.decode()
    assert 'value="enable"' in response.content.decode()
    staff.post(f"/nodes/{local_node.pk}/", {"action": "enable"})
    local_node.refresh_from_db()
    assert local_node.enabled
    assert staff.get(f"/nodes/{local_node.pk}/").status_code == 405
    assert staff.post("/nodes/999999/", {"action": "check"}).status_code == 404


def test_check_runs_the_health_check(alice: Any, tmp_path: Any) -> None:
    node = BuilderNode.objects.create(name="gone", endpoint=f"unix://{tmp_path}/none.sock")
    staff = _client(_staff(alice, "view_buildernode", "change_buildernode"))
    response = staff.post(f"/nodes/{node.pk}/", {"action": "check"}, follow=True)
    node.refresh_from_db()
    assert node.last_checked_at is not None and not node.reachable
    page = response.content.decode()
    assert "gone is unhealthy" in page and "unhealthy" in page
