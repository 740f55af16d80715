"""The build pipeline's steps, each called alone; the one ledger writer; the lease."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builds import ledger
from builds.lease import Lease, LeaseLost
from builds.models import Build, ManifestRecord
from builds.pipeline import BuildFailed, BuildRun
from builds.planner import staging_tag
from builds.registry import IndexSummary
from builds.worker import claim_next
from fakes import COMMIT, INDEX_DIGEST, FakeBackend
from portal.models import Project

IMAGE = "localhost:5000/alpha/hello"


def summary(digest: str) -> IndexSummary:
    return IndexSummary(digest=digest, media_type="application/vnd.oci.image.index.v1+json")


def claimed(backend: FakeBackend | None = None) -> BuildRun:
    build = claim_next("w1")
    assert build is not None
    run = BuildRun(build, backend or FakeBackend(), "w1")  # type: ignore[arg-type]
    run.start()
    return run


# --- the ledger's one writer -------------------------------------------------------------


def test_record_links_each_push_to_what_the_tag_held_before(project: Project, alice: Any) -> None:
    first, second = "sha256:" + "01" * 32, "sha256:" + "02" * 32
    one = ledger.record(
        reference=f"{IMAGE}:1", summary=summary(first), team=project.team, pushed_by=alice
    )
    same = ledger.record(
        reference=f"{IMAGE}:1", summary=summary(first), team=project.team, pushed_by=alice
    )
    moved = ledger.record(
        reference=f"{IMAGE}:1", summary=summary(second), team=project.team, pushed_by=alice
    )
    other = ledger.record(
        reference=f"{IMAGE}:2", summary=summary(second), team=project.team, pushed_by=alice
    )
    assert [one.previous_digest, same.previous_digest, moved.previous_digest] == ["", "", first]
    assert other.previous_digest == ""  # another tag has a history of its own
    assert moved.kind == ManifestRecord.Kind.BUILD and moved.pushed_by == alice


def test_record_keeps_no_anonymous_user(project: Project) -> None:
    from django.contrib.auth.models import AnonymousUser

    row = ledger.record(
        reference=f"{IMAGE}:x",
        summary=summary(INDEX_DIGEST),
        team=project.team,
        pushed_by=AnonymousUser(),
    )
    assert row.pushed_by is None


def test_the_immutable_rule_asks_the_registry_only_when_it_must(
    project: Project, alice: Any
) -> None:
    asked: list[str] = []

    def in_registry(answer: bool) -> Any:
        return lambda: asked.append("asked") or answer

    assert not ledger.version_taken(IMAGE, "1.0.0", in_registry(True))  # versions may move
    project.immutable_tags = True
    project.save()
    assert asked == []
    assert not ledger.version_taken(IMAGE, "latest", in_registry(True))  # not a version
    assert not ledger.version_taken(IMAGE, "1.0", in_registry(True))  # not x.y.z
    assert asked == []
    assert ledger.version_taken(IMAGE, "1.0.0", in_registry(True))  # pushed outside the portal
    assert not ledger.version_taken(IMAGE, "1.0.0", in_registry(False))
    assert asked == ["asked", "asked"]
    ledger.record(
        reference=f"{IMAGE}:1.0.0",
        summary=summary(INDEX_DIGEST),
        team=project.team,
        pushed_by=alice,
    )
    assert ledger.version_taken(IMAGE, "1.0.0", in_registry(False))  # recorded: no question
    assert asked == ["asked", "asked"]
    assert not ledger.version_taken(f"{IMAGE}-other", "1.0.0", in_registry(True))


# --- steps alone ---------------------------------------------------------------------------


def test_start_needs_a_claimed_plan(queued_build: Build) -> None:
    run = BuildRun(queued_build, FakeBackend(), "w1")  # type: ignore[arg-type]
    with pytest.raises(BuildFailed, match="has no plan"):
        run.start()


def test_fetch_source_records_the_commit_and_git_tag(queued_build: Build, tmp_path: Path) -> None:
    run = claimed()
    run.build.ref = "v1.1.0"
    src = run.fetch_source(tmp_path)
    assert (src / "go.mod").is_file()
    assert Build.objects.get(pk=queued_build.pk).commit == COMMIT
    assert run.git_tag == "v1.1.0"


def test_render_writes_the_plugin_dockerfile_and_keeps_it(
    queued_build: Build, tmp_path: Path
) -> None:
    run = claimed()
    src = run.fetch_source(tmp_path)
    dockerfile = run.render(tmp_path, src)
    text = dockerfile.read_text()
    assert "FROM --platform=$BUILDPLATFORM" in text and "TARGETARCH" in text
    assert (tmp_path / "Dockerfile.dockerignore").read_text() != ""
    assert Build.objects.get(pk=queued_build.pk).dockerfile == text


def test_render_uses_the_projects_own_dockerfile(queued_build: Build, tmp_path: Path) -> None:
    Project.objects.filter(pk=queued_build.project_id).update(custom_dockerfile="FROM scratch\n")
    run = claimed()
    dockerfile = run.render(tmp_path, run.fetch_source(tmp_path))
    assert dockerfile.read_text() == "FROM scratch\n"


def test_plan_runs_makes_one_run_per_node_pushing_a_staging_tag(
    queued_build: Build, tmp_path: Path
) -> None:
    run = claimed()
    src = run.fetch_source(tmp_path)
    run.resolve_tags()
    run.plan_runs(tmp_path, src, run.render(tmp_path, src), {})
    (spec,) = run.runs.specs  # the local node builds all three platforms
    assert spec.platforms == list(queued_build.platforms)
    # None of the build's tags until the images are checked (builds.publish).
    assert spec.tags == [f"{IMAGE}:{staging_tag(queued_build.pk, spec.platforms)}"]
    assert spec.labels["org.opencontainers.image.revision"] == COMMIT


def test_build_platforms_fails_with_the_runs_error(queued_build: Build, tmp_path: Path) -> None:
    run = claimed(FakeBackend(exit_code=1))
    src = run.fetch_source(tmp_path)
    run.resolve_tags()
    run.plan_runs(tmp_path, src, run.render(tmp_path, src), {})
    with pytest.raises(BuildFailed) as info:
        run.build_platforms()
    assert info.value.fault == Build.Fault.USER and info.value.reason


def test_verify_then_record_writes_one_row_per_tag(queued_build: Build, tmp_path: Path) -> None:
    run = claimed()
    src = run.fetch_source(tmp_path)
    run.resolve_tags()
    run.plan_runs(tmp_path, src, run.render(tmp_path, src), {})
    assert run.build_platforms() is None
    found = run.verify(tmp_path)
    assert found.digest == INDEX_DIGEST and ManifestRecord.objects.count() == 0
    run.record(found)
    rows = ManifestRecord.objects.filter(build=queued_build)
    assert {r.reference for r in rows} == {f"{IMAGE}:{t}" for t in run.build.tags}
    assert {(r.source_commit, r.digest) for r in rows} == {(COMMIT, INDEX_DIGEST)}


# --- the lease -----------------------------------------------------------------------------


def test_a_lease_is_lost_when_the_build_is_no_longer_ours(queued_build: Build) -> None:
    claim_next("w1")
    lease = Lease(queued_build, "w1")
    assert lease.renew(force=True) is False
    assert not Lease(queued_build, "someone-else").end(state=Build.State.SUCCEEDED)
    Build.objects.filter(pk=queued_build.pk).update(state=Build.State.FAILED)
    with pytest.raises(LeaseLost):
        lease.renew(force=True)
    assert not lease.end(state=Build.State.SUCCEEDED)


def test_a_lease_carries_the_cancel_and_the_time_limit(queued_build: Build, settings: Any) -> None:
    claim_next("w1")
    lease = Lease(queued_build, "w1")
    assert lease.renew() is False  # the first renewal is due at once
    Build.objects.filter(pk=queued_build.pk).update(cancel_requested=True)
    assert lease.renew() is False  # the next one is not due yet: no query
    assert lease.renew(force=True) is True and not lease.timed_out
    settings.PORTAL_BUILD_TIMEOUT_SECONDS = -1
    Build.objects.filter(pk=queued_build.pk).update(cancel_requested=False)
    assert lease.renew(force=True) is True and lease.timed_out
