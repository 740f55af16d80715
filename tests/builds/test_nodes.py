"""Builder node bookkeeping that needs no engine."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.utils import timezone

from builds.models import BuilderNode
from builds.nodes import check_due_nodes, check_node, ensure_local_node, image_store
from builds.placement import candidate_nodes


def test_local_node_is_registered_once(db: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/elsewhere.sock")
    node = ensure_local_node()
    assert (
        node is not None and node.name == "local" and node.endpoint == "unix:///run/elsewhere.sock"
    )
    assert ensure_local_node() is None
    assert BuilderNode.objects.count() == 1


def test_unreachable_node_is_marked_with_the_reason(db: Any, tmp_path: Any) -> None:
    node = BuilderNode.objects.create(
        name="gone", endpoint=f"unix://{tmp_path}/nothing.sock", reachable=True
    )
    check_node(node)
    node.refresh_from_db()
    assert node.reachable is False
    assert node.last_error and node.last_checked_at is not None


def test_a_check_keeps_what_staff_changed_meanwhile(db: Any, tmp_path: Any) -> None:
    node = BuilderNode.objects.create(
        name="n", endpoint=f"unix://{tmp_path}/gone.sock", enabled=True, max_builds=2
    )
    BuilderNode.objects.filter(pk=node.pk).update(enabled=False, max_builds=7)  # staff drains
    check_node(node)  # a worker's copy from before
    node.refresh_from_db()
    assert node.enabled is False and node.max_builds == 7
    assert node.reachable is False and node.last_error


def test_due_checks_skip_recently_checked_nodes(db: Any, tmp_path: Any) -> None:
    fresh = BuilderNode.objects.create(
        name="fresh", endpoint=f"unix://{tmp_path}/a.sock", last_checked_at=timezone.now()
    )
    stale = BuilderNode.objects.create(
        name="stale",
        endpoint=f"unix://{tmp_path}/b.sock",
        last_checked_at=timezone.now() - timedelta(hours=1),
    )
    assert [n.name for n in check_due_nodes(60)] == ["stale"]
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert stale.reachable is False and stale.last_error
    assert fresh.last_error == "" and fresh.reachable is False and fresh.engine_version == ""


def test_only_healthy_enabled_nodes_are_candidates(queued_build: Any) -> None:
    assert [n.name for n in candidate_nodes(queued_build)] == ["local"]
    BuilderNode.objects.create(name="down", endpoint="unix:///y.sock", reachable=False)
    drained = BuilderNode.objects.create(
        name="drained", endpoint="unix:///z.sock", reachable=True, enabled=False
    )
    assert [n.name for n in candidate_nodes(queued_build)] == ["local"]
    queued_build.project.builder_node = drained  # a pinned node that is drained: none
    queued_build.project.save()
    assert candidate_nodes(queued_build) == []


def test_binfmt_platforms_need_enabled_handlers_with_the_f_flag(tmp_path: Any) -> None:
    from builds.nodes import binfmt_platforms

    (tmp_path / "status").write_text("enabled\n")
    (tmp_path / "qemu-aarch64").write_text(
        "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: POCF\n"
    )
    (tmp_path / "qemu-arm").write_text(
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm\nflags: P\n"
    )
    (tmp_path / "qemu-s390x").write_text("disabled\nflags: F\n")
    (tmp_path / "qemu-riscv64").write_text("enabled\nflags: F\n")
    assert binfmt_platforms(tmp_path) == ["linux/arm64", "linux/riscv64"]


def test_binfmt_platforms_unknown_where_binfmt_misc_is_not_mounted(tmp_path: Any) -> None:
    """In a container the folder is empty (not mounted): unknown, not "no emulators", so a
    portal there keeps BuildKit's own list of the engine's platforms."""
    from builds.nodes import binfmt_platforms

    assert binfmt_platforms(tmp_path) is None
    assert binfmt_platforms(tmp_path / "missing") is None


def test_image_store_names_containerd_or_the_classic_driver() -> None:
    containerd = {
        "Driver": "overlayfs",
        "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
    }
    assert image_store(containerd) == "containerd"
    classic = {"Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]]}
    assert image_store(classic) == "overlay2"
    assert image_store({"Driver": "vfs", "DriverStatus": None}) == "vfs"
    assert image_store({}) == ""


DATA = Path(__file__).parent / "data"
BUILDX_CONTAINER_DRIVER = """Name:          multi
Driver:        docker-container

Nodes:
Name:             multi0
Endpoint:         unix:///var/run/docker.sock
Status:           running
BuildKit version: v0.13.2
Platforms:        linux/amd64, linux/amd64/v2, linux/arm64
"""


def _recorded_engine(tmp_path: Path, settings: Any, inspect: str) -> None:
    """A docker CLI that answers with outputs recorded from Debian's docker.io 26.1.5 engine."""
    (tmp_path / "inspect.txt").write_text(inspect)
    script = tmp_path / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in\n'
        f"  version) cat {DATA}/docker-version-debian.json ;;\n"
        f"  info) cat {DATA}/docker-info-debian.json ;;\n"
        f"  buildx) cat {tmp_path}/inspect.txt ;;\n"
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    settings.PORTAL_DOCKER_CLI = str(script)


def test_debians_unstamped_buildkit_is_shown_as_the_engines(
    db: Any, tmp_path: Path, settings: Any
) -> None:
    _recorded_engine(
        tmp_path, settings, (DATA / "buildx-inspect-debian-docker-driver.txt").read_text()
    )
    node = check_node(BuilderNode.objects.create(name="deb", endpoint="ssh://ci@build.example"))
    assert node.reachable, node.last_error
    assert node.engine_version == "26.1.5+dfsg1"
    assert node.buildkit_version == ""  # not the meaningless v0.0.0+unknown
    assert node.buildkit_label == "bundled with Docker 26.1.5+dfsg1"
    assert "linux/arm64" in node.emulated_platforms and node.native_platforms[0] == "linux/amd64"


def test_a_stamped_buildkit_version_is_shown_as_it_is(
    db: Any, tmp_path: Path, settings: Any
) -> None:
    _recorded_engine(tmp_path, settings, BUILDX_CONTAINER_DRIVER)
    node = check_node(BuilderNode.objects.create(name="bk", endpoint="ssh://ci@build.example"))
    assert node.buildkit_version == node.buildkit_label == "v0.13.2"


def test_a_node_checked_before_keeps_no_placeholder_version() -> None:
    node = BuilderNode(engine_version="26.1.5+dfsg1", buildkit_version="v0.0.0+unknown")
    assert node.buildkit_label == "bundled with Docker 26.1.5+dfsg1"
    assert BuilderNode(buildkit_version="v0.0.0+unknown").buildkit_label == "unknown"
