"""The worker against the fake backend: claim, run, log, progress, ledger, cancel, reaper."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from builds.models import AppendOnlyError, Build, BuilderNode, BuildPlatform, ManifestRecord
from builds.pipeline import BuildRun
from builds.planner import staging_tag
from builds.worker import claim_next, reap_stale, work_once
from fakes import COMMIT, INDEX_DIGEST, PLATFORM_DIGESTS, FakeBackend


def test_the_worker_logs_which_build_it_claimed_and_how_it_ended(
    queued_build: Build, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator (or a test restarting the right worker) reads who runs which build."""
    with caplog.at_level("INFO", logger="builds.worker"):
        work_once("w1", FakeBackend())
    said = [r.getMessage() for r in caplog.records if r.name == "builds.worker"]
    assert said == [f"build {queued_build.pk} claimed by w1", f"build {queued_build.pk}: succeeded"]


def test_build_runs_to_a_recorded_manifest(queued_build: Build, settings: Any) -> None:
    backend = FakeBackend()
    ran = work_once("w1", backend)
    assert ran is not None and ran.pk == queued_build.pk
    build = Build.objects.get(pk=queued_build.pk)
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert build.commit == COMMIT and build.digest == INDEX_DIGEST
    assert build.node is not None and build.node.name == "local"

    # buildx got every value as its own --flag=value argument and the context after "--".
    argv = backend.spec.argv()  # type: ignore[union-attr]
    assert "--platform=linux/amd64,linux/arm64,linux/arm/v7" in argv
    # A staging tag; :latest only once the images passed the architecture check.
    assert f"--tag=localhost:5000/alpha/hello:crossport-build-{queued_build.pk}-" in "".join(argv)
    assert "--tag=localhost:5000/alpha/hello:latest" not in argv
    assert backend.tagged[0] == f"localhost:5000/alpha/hello:latest@{INDEX_DIGEST}"
    assert "--provenance=mode=max" not in argv  # the local node keeps images without containerd
    assert "--push" in argv and "--progress=rawjson" in argv
    assert argv[-2] == "--" and argv[-1] == str(backend.spec.context)  # type: ignore[union-attr]
    assert (
        "FROM --platform=$BUILDPLATFORM localhost:5000/library/golang:1.19 AS source"
        in backend.dockerfile
    )
    assert backend.context_files == [".git", "go.mod", "main.go"]  # as a git checkout
    assert build.dockerfile == backend.dockerfile
    assert not list(Path(settings.PORTAL_WORKSPACE_DIR).iterdir()), "workspace left behind"

    seqs = list(build.log_lines.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    texts = [line.text for line in build.log_lines.all()]
    assert any("go build" in t for t in texts)
    platforms_seen = set(build.log_lines.exclude(platform="").values_list("platform", flat=True))
    assert {"linux/amd64", "linux/arm64", "linux/arm/v7"} <= platforms_seen

    rows = {p.platform: p for p in build.platform_states.all()}
    assert {k: v.digest for k, v in rows.items()} == PLATFORM_DIGESTS
    assert all(p.state == BuildPlatform.State.DONE and p.percent == 100 for p in rows.values())

    record = ManifestRecord.objects.get(build=build)
    assert record.reference == "localhost:5000/alpha/hello:latest"
    assert record.digest == INDEX_DIGEST and record.platforms == PLATFORM_DIGESTS
    assert len(record.attestations) == 3 and record.source_commit == COMMIT
    assert record.pushed_by == build.requested_by and record.builder_node == "local"


def test_failed_build_keeps_the_error_as_reason(queued_build: Build) -> None:
    stream = (
        b'{"vertexes": [{"digest": "sha256:aa", "name": "[linux/arm64 build 6/6] RUN go build"}]}\n'
    )
    stream += b'ERROR: failed to solve: process "/bin/sh -c go build" did not complete successfully: exit code: 1\n'
    work_once("w1", FakeBackend(stream=stream, exit_code=1))
    build = Build.objects.get(pk=queued_build.pk)
    assert build.state == Build.State.FAILED
    assert build.fault == Build.Fault.USER
    assert "did not complete successfully" in build.reason
    assert not ManifestRecord.objects.exists()
    assert set(build.platform_states.values_list("state", flat=True)) == {
        BuildPlatform.State.FAILED
    }


def test_index_with_wrong_platforms_fails_the_build(queued_build: Build) -> None:
    wrong = {
        "linux/amd64": PLATFORM_DIGESTS["linux/amd64"],
        "unknown/unknown": "sha256:" + "55" * 32,
    }
    work_once("w1", FakeBackend(platforms=wrong))
    build = Build.objects.get(pk=queued_build.pk)
    assert build.state == Build.State.FAILED and build.fault == Build.Fault.SYSTEM
    assert "missing linux/arm/v7, linux/arm64" in build.reason
    assert not ManifestRecord.objects.exists()


def test_cancel_interrupts_a_running_build(queued_build: Build, settings: Any) -> None:
    def cancel_on_third_chunk(n: int) -> None:
        if n == 2:
            Build.objects.filter(pk=queued_build.pk).update(cancel_requested=True)

    backend = FakeBackend(on_chunk=cancel_on_third_chunk, chunk_size=400)
    run = BuildRun(claim_next("w1"), backend, "w1")  # type: ignore[arg-type]
    run.lease._last_beat = -1e9
    # Whoever sees the verdict must find the workspace already gone.
    on_disk_at_finish: list[list[Path]] = []
    publish = run.finish

    def finish(*verdict: str) -> None:
        on_disk_at_finish.append(list(Path(settings.PORTAL_WORKSPACE_DIR).iterdir()))
        publish(*verdict)

    run.finish = finish  # type: ignore[method-assign]
    import builds.lease as lease

    lease.HEARTBEAT_EVERY, saved = 0.0, lease.HEARTBEAT_EVERY
    try:
        run.execute()
    finally:
        lease.HEARTBEAT_EVERY = saved
    build = Build.objects.get(pk=queued_build.pk)
    assert backend.stopped
    assert build.state == Build.State.CANCELLED and build.reason == "cancelled on request"
    assert on_disk_at_finish == [[]]
    # Its platforms read cancelled too, never failed.
    assert set(build.platform_states.values_list("state", flat=True)) == {
        BuildPlatform.State.CANCELLED
    }
    assert build.to_api()["platforms"]["linux/arm64"]["state"] == "cancelled"


def test_cancel_before_start_needs_no_worker(queued_build: Build, api: Any, alice: Any) -> None:
    response = api(alice).post(f"/api/v1/builds/{queued_build.pk}/cancel")
    assert response.status_code == 202
    assert response.json()["state"] == "cancelled"
    assert {p["state"] for p in response.json()["platforms"].values()} == {"cancelled"}
    assert claim_next("w1") is None


def test_reaper_fails_builds_of_lost_workers(queued_build: Build, settings: Any) -> None:
    claim_next("dead-worker")
    stale = timezone.now() - timedelta(seconds=settings.PORTAL_BUILD_LEASE_SECONDS + 5)
    Build.objects.filter(pk=queued_build.pk).update(heartbeat_at=stale)
    fresh = Build.objects.create(
        project=queued_build.project,
        ref="main",
        tags=["x"],
        platforms=["linux/amd64"],
        state=Build.State.RUNNING,
        worker="alive",
        heartbeat_at=timezone.now(),
    )
    assert reap_stale() == [queued_build.pk]
    build = Build.objects.get(pk=queued_build.pk)
    assert build.state == Build.State.FAILED and build.reason.startswith("worker lost")
    assert build.fault == Build.Fault.SYSTEM
    assert Build.objects.get(pk=fresh.pk).state == Build.State.RUNNING
    assert "worker lost" in build.log_lines.last().text


def test_a_reaped_build_is_not_revived_by_its_slow_worker(queued_build: Build) -> None:
    run = BuildRun(claim_next("slow"), FakeBackend(), "slow")  # type: ignore[arg-type]
    Build.objects.filter(pk=queued_build.pk).update(state=Build.State.FAILED, reason="worker lost")
    run.finish(Build.State.SUCCEEDED, "pushed")
    assert Build.objects.get(pk=queued_build.pk).state == Build.State.FAILED


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_never_claim_the_same_build(project: Any, alice: Any) -> None:
    from builds.services import queue_build
    from portal.models import Project

    projects = [project] + [
        Project.objects.create(
            team=project.team,
            name=f"p{n}",
            git_url=project.git_url,
            image=f"localhost:5000/alpha/p{n}",
            platforms=project.platforms,
            language="go",
        )
        for n in range(5)
    ]
    builds = {queue_build(p, alice).pk for p in projects}
    claimed: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def race() -> None:
        barrier = threading.Barrier(4)

        def worker(name: str) -> None:
            barrier.wait()
            try:
                while (build := claim_next(name)) is not None:
                    with lock:
                        claimed.append(build.pk)
            except BaseException as exc:  # a crashed worker must fail the test, not hide
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    race()  # the only node takes 2 builds at once: the node rows are locked while planning
    assert errors == []
    assert len(claimed) == len(set(claimed)) == 2, "the node's build limit holds under a race"
    BuilderNode.objects.filter(name="local").update(max_builds=10)
    race()
    assert errors == []
    assert sorted(claimed) == sorted(builds), "every build claimed exactly once"
    assert Build.objects.filter(state=Build.State.RUNNING).count() == 6


def test_ledger_is_append_only(queued_build: Build) -> None:
    work_once("w1", FakeBackend())
    record = ManifestRecord.objects.get()
    record.digest = "sha256:" + "00" * 32
    with pytest.raises(AppendOnlyError):
        record.save()
    with pytest.raises(AppendOnlyError):
        record.delete()
    with pytest.raises(AppendOnlyError):
        ManifestRecord.objects.all().update(digest="x")
    with pytest.raises(AppendOnlyError):
        ManifestRecord.objects.all().delete()
    assert ManifestRecord.objects.get().digest == INDEX_DIGEST


def test_extra_tags_are_added_after_one_push(project: Any, alice: Any) -> None:
    from builds.services import queue_build

    build = queue_build(project, alice, tags=["v1", "latest", "stable"])
    backend = FakeBackend()
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    tags = [a for a in backend.spec.argv() if a.startswith("--tag=")]  # type: ignore[union-attr]
    assert tags == [f"--tag=localhost:5000/alpha/hello:{staging_tag(build.pk, project.platforms)}"]
    assert backend.tagged == [
        f"localhost:5000/alpha/hello:v1@{INDEX_DIGEST}",
        f"localhost:5000/alpha/hello:latest@{INDEX_DIGEST}",
        f"localhost:5000/alpha/hello:stable@{INDEX_DIGEST}",
    ]
    assert sorted(ManifestRecord.objects.values_list("reference", flat=True)) == [
        "localhost:5000/alpha/hello:latest",
        "localhost:5000/alpha/hello:stable",
        "localhost:5000/alpha/hello:v1",
    ]


def test_cancel_during_checkout_stops_before_buildx(queued_build: Build) -> None:
    Build.objects.filter(pk=queued_build.pk).update(cancel_requested=True)
    backend = FakeBackend()
    work_once("w1", backend)
    build = Build.objects.get(pk=queued_build.pk)
    assert build.state == Build.State.CANCELLED
    assert backend.spec is None, "buildx must not start after a cancel"


def test_a_cancel_after_the_push_still_records_it(queued_build: Build) -> None:
    class LateCancel(FakeBackend):
        def build(
            self, specs: Any, on_output: Any, should_stop: Any, grace: float, *extra: Any
        ) -> list[int]:
            codes = super().build(specs, on_output, lambda: False, grace, *extra)
            Build.objects.filter(pk=queued_build.pk).update(cancel_requested=True)
            return codes

    work_once("w1", LateCancel())
    build = Build.objects.get(pk=queued_build.pk)
    assert build.state == Build.State.SUCCEEDED
    assert ManifestRecord.objects.filter(build=build).count() == 1


def test_a_registry_500_during_the_push_is_retried_once(queued_build: Build) -> None:
    hiccup = (
        b"ERROR: unexpected status from HEAD request to http://localhost:5000/v2/alpha/hello/"
        b"manifests/latest: 500 Internal Server Error\n"
    )

    class FlakyRegistry(FakeBackend):
        calls = 0

        def build(
            self, specs: Any, on_output: Any, should_stop: Any, grace: float, *extra: Any
        ) -> list[int]:
            FlakyRegistry.calls += 1
            if FlakyRegistry.calls == 1:
                on_output(0, hiccup)
                return [1]
            return super().build(specs, on_output, should_stop, grace, *extra)

    work_once("w1", FlakyRegistry())
    build = Build.objects.get(pk=queued_build.pk)
    assert FlakyRegistry.calls == 2
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert any("pushing again" in line.text for line in build.log_lines.all())


def test_a_real_build_error_is_not_retried(queued_build: Build) -> None:
    class Broken(FakeBackend):
        calls = 0

        def build(
            self, specs: Any, on_output: Any, should_stop: Any, grace: float, *extra: Any
        ) -> list[int]:
            Broken.calls += 1
            on_output(
                0, b"ERROR: failed to solve: process did not complete successfully: exit code: 2\n"
            )
            return [1]

    work_once("w1", Broken())
    assert Broken.calls == 1
    assert Build.objects.get(pk=queued_build.pk).state == Build.State.FAILED


def test_oci_labels_and_index_annotations_are_passed_as_values(queued_build: Build) -> None:
    backend = FakeBackend()
    work_once("w1", backend)
    argv = backend.spec.argv()  # type: ignore[union-attr]
    build = Build.objects.get(pk=queued_build.pk)
    assert "--label=org.opencontainers.image.source=file:///srv/git/hello.git" in argv
    assert f"--annotation=index:org.opencontainers.image.revision={build.commit}" in argv
    # No x.y.z tag, no version; the source never carries credentials.
    assert not any("org.opencontainers.image.version" in a for a in argv)
    assert any(a.startswith("--annotation=index:org.opencontainers.image.created=20") for a in argv)
    assert argv.index("--") == len(argv) - 2, "every value comes before the context"


def test_tag_templates_expand_after_the_checkout(project: Any, alice: Any) -> None:
    from builds.services import queue_build

    project.tag_templates = ["{semver}", "{short_sha}", "{latest}"]
    project.save()
    build = queue_build(project, alice, ref="v2.5.0")
    backend = FakeBackend()
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert build.tags == ["2.5.0", "2.5", "2", COMMIT[:7]]
    assert backend.tagged[0] == f"localhost:5000/alpha/hello:2.5.0@{INDEX_DIGEST}"
    assert sorted(ManifestRecord.objects.values_list("reference", flat=True)) == sorted(
        f"localhost:5000/alpha/hello:{t}" for t in build.tags
    )


def test_semver_tags_come_from_git_tags_only(project: Any, alice: Any) -> None:
    from builds.services import queue_build

    project.tag_templates = ["{branch}", "{semver}"]
    project.immutable_tags = True
    project.save()
    branch = queue_build(project, alice, ref="v9.9.9")  # a branch named like a release
    work_once("w1", FakeBackend())
    branch.refresh_from_db()
    assert branch.state == Build.State.SUCCEEDED, branch.reason
    assert branch.tags == ["v9.9.9"]
    release = queue_build(project, alice, ref="v2.5.0")  # a tag of the fake repository
    backend = FakeBackend()
    work_once("w1", backend)
    release.refresh_from_db()
    assert release.tags == ["v2.5.0", "2.5.0", "2.5", "2"]
    # The OCI version is the release's x.y.z, not the first tag.
    argv = backend.spec.argv()  # type: ignore[union-attr]
    assert "--annotation=index:org.opencontainers.image.version=2.5.0" in argv
    assert "--label=org.opencontainers.image.version=2.5.0" in argv


def test_no_applicable_tag_fails_clearly(project: Any, alice: Any) -> None:
    from builds.services import queue_build

    project.tag_templates = ["{semver}"]
    project.save()
    build = queue_build(project, alice)
    work_once("w1", FakeBackend())
    build.refresh_from_db()
    assert build.state == Build.State.FAILED and "no tag applies to ref main" in build.reason


def test_immutable_versions_are_not_moved(project: Any, alice: Any) -> None:
    from builds.services import queue_build

    project.tag_templates = ["{semver}"]
    project.immutable_tags = True
    project.save()
    queue_build(project, alice, ref="v1.0.0")
    work_once("w1", FakeBackend())
    again = queue_build(project, alice, ref="v1.0.0")
    backend = FakeBackend()
    work_once("w1", backend)
    again.refresh_from_db()
    assert again.state == Build.State.FAILED
    assert again.reason == "tag 1.0.0 already exists and versions are immutable"
    assert backend.spec is None, "refused before building"
    # Also when the tag was pushed outside the portal (found in the registry).
    other = queue_build(project, alice, ref="v1.1.0")
    outside = FakeBackend()
    outside.existing = {"localhost:5000/alpha/hello:1.1.0"}
    work_once("w1", outside)
    other.refresh_from_db()
    assert other.state == Build.State.FAILED and "1.1.0 already exists" in other.reason


def test_builds_of_one_project_run_one_at_a_time(project: Any, alice: Any) -> None:
    from builds.services import queue_build

    first, second = queue_build(project, alice), queue_build(project, alice)
    assert claim_next("w1").pk == first.pk  # type: ignore[union-attr]
    assert claim_next("w2") is None, "the project already has a build running"
    Build.objects.filter(pk=first.pk).update(state=Build.State.SUCCEEDED)
    assert claim_next("w2").pk == second.pk  # type: ignore[union-attr]


def test_log_text_split_inside_a_utf8_character_arrives_whole(queued_build: Build) -> None:
    import base64
    import json

    text = "grüße ✓\n".encode()
    status = {
        "vertexes": [
            {"digest": "sha256:aa", "name": "[build 1/1] RUN x", "started": "2026-01-01T00:00:00Z"}
        ],
        "logs": [{"vertex": "sha256:aa", "stream": 1, "data": base64.b64encode(text).decode()}],
    }
    stream = json.dumps(status).encode() + b"\n" + "ERROR: kaputt ✗\n".encode()
    work_once("w1", FakeBackend(stream=stream, exit_code=1, chunk_size=1))
    texts = [line.text for line in Build.objects.get(pk=queued_build.pk).log_lines.all()]
    assert any(t.endswith("grüße ✓") for t in texts) and "ERROR: kaputt ✗" in texts
