"""The build worker: claim queued builds, run them through a backend, keep a lease, reap lost ones.

Several workers (threads or processes) may run at once: a build is claimed with a conditional
UPDATE ... WHERE state='queued' and only the worker whose row count is 1 runs it; every later
write is again conditional on (state='running', worker=me), so a build that the reaper already
failed is never revived by a slow worker.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Max
from django.utils import timezone

import lang_plugins
from builds import (
    builders,
    buildx,
    credentials,
    events,
    gitsource,
    outbound,
    registry,
    services,
    tagging,
)
from builds.endpoints import cert_dir
from builds.models import Build, BuilderNode, BuildPlatform, LogLine, ManifestRecord
from builds.nodes import check_due_nodes, check_node, plan_build
from builds.planner import Plan, PlanError, Step, builder_name, staging_tag
from builds.proc import ProcessStopped
from builds.progress import LogLine as RawLine
from builds.progress import PlatformProgress, ProgressTracker, StepUpdate
from builds.rawjson import StreamDecoder
from builds.refs import ImageRef, InvalidValue, parse_reference
from portal.models import Project
from portal.sealing import SealError

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = 2.0
NODE_CHECK_POLL = 10.0  # how often the loop asks whether a node check is due
# A registry's transient server error while pushing (not the project's fault).
PUSH_RETRIES = 2
REGISTRY_5XX = re.compile(r"unexpected status from \w+ request to \S+: 50[0-4]\b")
Tick = Callable[[], bool]
Outcome = tuple[str, str, str]  # state, reason, fault
STATUS_EVERY = 0.5


class Backend(Protocol):
    """The seam between the worker and the outside world (git, buildx, the registry)."""

    def fetch(self, url: str, ref: str, dest: Path, tick: Tick) -> str: ...

    def build(
        self,
        specs: list[buildx.BuildSpec],
        on_output: Callable[[int, bytes], None],
        should_stop: Callable[[], bool],
        grace: float,
        on_exit: Callable[[int, int], None] | None = None,
    ) -> list[int]: ...

    def read_index(self, ref: ImageRef, digest: str, tick: Tick) -> registry.IndexSummary: ...

    def merge(
        self, ref: ImageRef, sources: list[str], tag: str, annotations: dict[str, str], tick: Tick
    ) -> str: ...

    def tag(self, ref: ImageRef, digest: str, tag: str, tick: Tick) -> None: ...

    def exists(self, ref: ImageRef, tag: str, tick: Tick) -> bool: ...

    def check(self, node: BuilderNode) -> BuilderNode: ...

    def check_push(self, ref: ImageRef) -> None: ...


class DockerBackend:
    def fetch(self, url: str, ref: str, dest: Path, tick: Tick) -> str:
        return gitsource.fetch(url, ref, dest, tick=tick)

    def build(
        self,
        specs: list[buildx.BuildSpec],
        on_output: Callable[[int, bytes], None],
        should_stop: Callable[[], bool],
        grace: float,
        on_exit: Callable[[int, int], None] | None = None,
    ) -> list[int]:
        return buildx.run(specs, on_output, should_stop, grace, on_exit)

    def read_index(self, ref: ImageRef, digest: str, tick: Tick) -> registry.IndexSummary:
        return registry.read_index(ref, digest, tick=tick)

    def merge(
        self, ref: ImageRef, sources: list[str], tag: str, annotations: dict[str, str], tick: Tick
    ) -> str:
        return registry.merge_index(ref, sources, tag, annotations, tick=tick)

    def tag(self, ref: ImageRef, digest: str, tag: str, tick: Tick) -> None:
        registry.tag_manifest(ref, digest, tag, tick=tick)

    def exists(self, ref: ImageRef, tag: str, tick: Tick) -> bool:
        return registry.tag_exists(ref, tag, tick=tick)

    def check(self, node: BuilderNode) -> BuilderNode:
        return check_node(node)

    def check_push(self, ref: ImageRef) -> None:
        # BuildKit pushes from the node: the portal cannot pin that connection, but it does
        # not start a build towards a registry the outbound guard refuses.
        registry.check_registry(ref.domain)


class BuildFailed(Exception):
    def __init__(self, reason: str, fault: str = Build.Fault.USER) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fault = fault


class LeaseLost(Exception):
    """The build is no longer ours (reaped or finished elsewhere)."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


# --- claiming and reaping ------------------------------------------------------------------


def planning_dockerfile(project: Project) -> str:
    """The Dockerfile as known before checkout: enough to see whether it cross-compiles."""
    try:
        return services.render_dockerfile(project).dockerfile
    except (KeyError, ValueError):
        return ""  # the build itself will report the broken settings


def claim_next(worker_id: str) -> Build | None:
    """Claim a queued build whose project has no build running, and plan it.

    One build per project at a time: builds of a project push the same tags, so running them
    in order keeps "latest" and the immutable-version check (done before the push) honest.
    Teams with fewer running builds go first (oldest first among equals), so one team's queue
    cannot starve another's. The project row and the node rows are locked while claiming and
    planning, so two workers cannot both start one, nor overfill a node. A build that no node
    has room for stays queued; one that no healthy node can build at all fails, saying why.
    """
    now = timezone.now()
    queued = list(
        Build.objects.filter(state=Build.State.QUEUED)
        .exclude(project__builds__state=Build.State.RUNNING)
        .order_by("created_at", "pk")
        .values_list("pk", "project_id", "project__team_id")[:500]
    )
    running = Counter(
        Build.objects.filter(state=Build.State.RUNNING).values_list("project__team_id", flat=True)
    )
    queued.sort(key=lambda row: running[row[2]])  # stable: oldest first among equals
    waiting: set[int] = set()  # projects whose oldest build waits: their later ones wait too
    for pk, project_id, _team in queued:
        if project_id in waiting:
            continue
        unplannable = ""
        with transaction.atomic():
            # Evaluated as lists: .exists() and .count() would drop the FOR UPDATE.
            list(Project.objects.select_for_update().filter(pk=project_id).values_list("pk"))
            busy = Build.objects.filter(project_id=project_id, state=Build.State.RUNNING)
            if busy.exists():
                continue
            list(BuilderNode.objects.select_for_update().values_list("pk"))
            build = Build.objects.select_related("project__team", "requested_by").get(pk=pk)
            if build.state != Build.State.QUEUED:
                continue
            try:
                plan = plan_build(build, planning_dockerfile(build.project))
            except PlanError as exc:
                if exc.busy:
                    waiting.add(project_id)
                    continue  # stays queued until a node has room
                unplannable = str(exc)
            fields = {"state": Build.State.RUNNING, "worker": worker_id, "started_at": now}
            if unplannable:
                fields = {
                    "state": Build.State.FAILED,
                    "reason": f"no build plan: {unplannable}",
                    "fault": Build.Fault.SYSTEM,
                    "finished_at": now,
                }
            else:
                fields |= {"heartbeat_at": now, "plan": plan.to_json()}
            if not Build.objects.filter(pk=pk, state=Build.State.QUEUED).update(**fields):
                continue
            if not unplannable:
                first = plan.steps[0].node_id
                Build.objects.filter(pk=pk).update(node_id=first)
                for step in plan.steps:
                    BuildPlatform.objects.update_or_create(
                        build=build,
                        platform=step.platform,
                        defaults={"node_id": step.node_id, "method": step.method},
                    )
        build.refresh_from_db()
        if unplannable:
            BuildLog(build).write([(None, 2, f"Crossport: failed: {build.reason}")])
            events.publish_status(build)
            continue
        return build
    return None


def reap_stale(now: datetime | None = None) -> list[int]:
    """Fail running builds whose lease expired: their worker died or hung."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.PORTAL_BUILD_LEASE_SECONDS)
    reaped = []
    stale = Build.objects.filter(state=Build.State.RUNNING, heartbeat_at__lt=cutoff)
    for build in stale:
        changed = Build.objects.filter(
            pk=build.pk, state=Build.State.RUNNING, heartbeat_at=build.heartbeat_at
        ).update(
            state=Build.State.FAILED,
            fault=Build.Fault.SYSTEM,
            reason=f"worker lost: no heartbeat from {build.worker or 'its worker'} since "
            f"{build.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC",
            finished_at=now,
        )
        if changed:
            build.platform_states.exclude(state=BuildPlatform.State.DONE).update(
                state=BuildPlatform.State.FAILED
            )
            build.refresh_from_db()
            # A dead worker on this machine left its workspace behind.
            for leftover in _workspace_root().glob(f"build-{build.pk}-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            BuildLog(build).write([(None, 2, f"Crossport: {build.reason}")])
            events.publish_status(build)
            reaped.append(build.pk)
    return reaped


# --- log lines -------------------------------------------------------------------------------


class BuildLog:
    """Assigns gapless sequence numbers to a build's lines, stores and publishes them."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self.seq = build.log_lines.aggregate(m=Max("seq"))["m"] or 0

    def write(self, lines: list[tuple[str | None, int, str]]) -> None:
        if not lines:
            return
        rows = []
        for platform, stream, text in lines:
            self.seq += 1
            rows.append(
                LogLine(
                    build=self.build,
                    seq=self.seq,
                    platform=platform or "",
                    stream=stream,
                    text=text,
                )
            )
        LogLine.objects.bulk_create(rows)
        events.publish_lines(self.build.pk, rows)

    def say(self, text: str) -> None:
        self.write([(None, 0, f"Crossport: {text}")])


# --- running one build ---------------------------------------------------------------------


class BuildRun:
    """Runs one claimed build. Each step is a method so tests can call it alone."""

    def __init__(self, build: Build, backend: Backend, worker_id: str) -> None:
        self.build = build
        self.backend = backend
        self.worker_id = worker_id
        self.log = BuildLog(build)
        claimed = build.plan.get("steps") and not build.plan.get("preview")
        self.plan = Plan.from_json(build.plan) if claimed else None
        self.streams: list[RunStream] = []
        self.platforms: dict[str, BuildPlatform] = {}
        self.nodes: dict[int, BuilderNode] = {}
        self.docker_config = ""  # set when the team has a login for the image's registry
        self.git_tag: str | None = None  # set by the checkout when the ref is a git tag
        self._last_beat = 0.0
        self._last_status = 0.0
        self._cancel = False
        self._timed_out = False
        self._started = time.monotonic()

    # lease ------------------------------------------------------------------------------
    def _mine(self):  # type: ignore[no-untyped-def]
        return Build.objects.filter(
            pk=self.build.pk, state=Build.State.RUNNING, worker=self.worker_id
        )

    def heartbeat(self, force: bool = False) -> bool:
        """Renew the lease; True when the build should stop (cancelled, or no longer ours)."""
        now = time.monotonic()
        if not force and now - self._last_beat < HEARTBEAT_EVERY:
            return self._cancel
        self._last_beat = now
        if not self._mine().update(heartbeat_at=timezone.now()):
            raise LeaseLost()
        self._cancel = Build.objects.filter(pk=self.build.pk, cancel_requested=True).exists()
        if now - self._started > settings.PORTAL_BUILD_TIMEOUT_SECONDS:
            self._timed_out = self._cancel = True
        return self._cancel

    # steps ------------------------------------------------------------------------------
    def start(self) -> None:
        build = self.build
        if self.plan is None:
            raise BuildFailed("the build has no plan (it was not claimed by a worker)")
        self.platforms = {row.platform: row for row in build.platform_states.select_related("node")}
        for step in self.plan.steps:
            node = self.platforms[step.platform].node
            if node is None:
                raise BuildFailed(f"node {step.node} was removed", Build.Fault.SYSTEM)
            self.nodes[node.pk] = node
        runs = self.plan.runs
        self.log.say(
            f"build {build.pk} of {build.project} for {', '.join(build.platforms)}, "
            f"strategy {self.plan.strategy}: {len(runs)} buildx run(s)"
            + (" in parallel, merged afterwards" if len(runs) > 1 else "")
        )
        for steps in runs:
            self.log.say(
                f"  on node {steps[0].node}: "
                + ", ".join(f"{s.platform} ({s.method})" for s in steps)
            )
        events.publish_status(build)

    def registry_login(self, workspace: Path) -> str:
        """The team's login for the image's registry, as a DOCKER_CONFIG in the workspace
        (removed with it, whatever way the build ends)."""
        project = self.build.project
        login = credentials.for_image(project.team_id, project.image)
        if login is None:
            return ""
        builder = builder_name(self.plan.strategy) if self.plan else None
        layer = builders.config_dir() if builder else None
        credentials.write_config(workspace / "docker-config", [login], layer=layer)
        self.log.say(f"pushing with the team's login for {login.registry} (user {login.username})")
        self.docker_config = str(workspace / "docker-config")
        return self.docker_config

    def checkout(self, workspace: Path) -> Path:
        project = self.build.project
        self.log.say(f"fetching {project.git_url} at {self.build.ref}")
        src = workspace / "src"
        try:
            commit = self.backend.fetch(project.git_url, self.build.ref, src, self.heartbeat)
        except gitsource.SourceError as exc:
            raise BuildFailed(str(exc)) from exc
        self.build.commit = commit
        self.build.save(update_fields=["commit"])
        self.git_tag = gitsource.fetched_tag(src)
        self.log.say(
            f"checked out commit {commit}" + (f" (tag {self.git_tag})" if self.git_tag else "")
        )
        return src

    def resolve_tags(self) -> None:
        """Expand tag templates now that the commit is known; guard immutable versions."""
        build, project = self.build, self.build.project
        try:
            tags = tagging.expand(
                build.tags,
                ref=build.ref,
                commit=build.commit,
                default_ref=project.ref,
                git_tag=self.git_tag,
            )
        except InvalidValue as exc:
            raise BuildFailed(f"tags: {exc}") from exc
        if not tags:
            raise BuildFailed(
                f"no tag applies to ref {build.ref} (templates: {' '.join(build.tags)})"
            )
        if tags != build.tags:
            self.log.say(f"tags for this build: {' '.join(tags)}")
        build.tags = tags
        build.save(update_fields=["tags"])
        if project.immutable_tags:
            ref = parse_reference(project.image)
            for tag in tags:
                if not tagging.FULL_SEMVER_TAG.fullmatch(tag):
                    continue
                recorded = ManifestRecord.objects.filter(
                    reference=f"{project.image}:{tag}"
                ).exists()
                try:
                    pushed = recorded or self.backend.exists(ref, tag, self.heartbeat)
                except registry.RegistryError as exc:
                    raise BuildFailed(f"checking tag {tag}: {exc}", Build.Fault.SYSTEM) from exc
                if pushed:
                    raise BuildFailed(f"tag {tag} already exists and versions are immutable")

    def render(self, workspace: Path, src: Path) -> Path:
        project = self.build.project
        try:
            plugin = lang_plugins.get_plugin(project.language)
            options = plugin.clean_options(project.options)
        except (KeyError, ValueError) as exc:
            raise BuildFailed(f"project settings: {exc}") from exc
        detection = plugin.detect(src)
        for name, value in options.items():
            if not value and detection is not None and detection.options.get(name):
                options[name] = detection.options[name]
                self.log.say(f"option {name} detected from the source: {options[name]}")
        rendered = plugin.render(options, mirror=settings.PORTAL_BASE_IMAGE_MIRROR)
        text = rendered.dockerfile
        if project.custom_dockerfile:
            self.log.say("using the project's own Dockerfile instead of the generated one")
            text = project.custom_dockerfile
        dockerfile = workspace / "Dockerfile"
        dockerfile.write_text(text)
        # BuildKit reads <Dockerfile>.dockerignore before the context's own .dockerignore.
        (workspace / "Dockerfile.dockerignore").write_text(rendered.dockerignore)
        self.build.dockerfile = text
        self.build.save(update_fields=["dockerfile"])
        return dockerfile

    def specs(
        self, workspace: Path, src: Path, dockerfile: Path, certs: dict[int, Path | None]
    ) -> list[buildx.BuildSpec]:
        """One buildx run per group of the plan. A single run pushes the tag itself; several
        push to staging tags (the docker driver cannot push by digest) and are merged."""
        assert self.plan is not None
        project = self.build.project
        runs = self.plan.runs
        specs = []
        for index, steps in enumerate(runs):
            node = self.nodes[steps[0].node_id]
            platforms = [s.platform for s in steps]
            tag = self.build.tags[0] if len(runs) == 1 else staging_tag(self.build.pk, platforms)
            builder = builder_name(self.plan.strategy) or ""
            specs.append(
                buildx.BuildSpec(
                    builder=builder,
                    docker_config=self.docker_config
                    or (str(builders.config_dir()) if builder else ""),
                    context=src,
                    dockerfile=dockerfile,
                    platforms=platforms,
                    # One tag per push: the others are added afterwards (registry.tag_manifest).
                    tags=[f"{project.image}:{tag}"],
                    metadata_file=workspace / f"metadata-{index}.json",
                    docker_host="" if builder else node.endpoint,
                    cert_path=None if builder else certs.get(node.pk),
                    network=settings.PORTAL_BUILD_NETWORK,
                    # The same OCI facts on every image config and on the index itself.
                    labels=self.oci_annotations(),
                    annotations={f"index:{k}": v for k, v in self.oci_annotations().items()},
                    push_once=not builder and node.image_store == "containerd",
                )
            )
            # Single-platform runs name no platform in their steps.
            only = platforms[0] if len(platforms) == 1 else None
            self.streams.append(RunStream(steps, StreamDecoder(), ProgressTracker(only)))
        return specs

    def oci_annotations(self) -> dict[str, str]:
        project, build = self.build.project, self.build
        return {
            "org.opencontainers.image.source": project.git_url,
            "org.opencontainers.image.revision": build.commit,
            "org.opencontainers.image.title": project.name,
            "org.opencontainers.image.version": tagging.version(build.tags),
            "org.opencontainers.image.created": (build.started_at or timezone.now()).isoformat(),
        }

    def on_output(self, index: int, chunk: bytes) -> None:
        self._consume(index, self.streams[index].decoder.feed_bytes(chunk))

    def _consume(self, index: int, items: list[dict[str, object] | str]) -> None:
        lines: list[tuple[str | None, int, str]] = []
        changed = False
        for item in items:
            for event in self.streams[index].tracker.consume(item):
                if isinstance(event, RawLine):
                    lines.append((event.platform, event.stream, event.text))
                elif isinstance(event, (StepUpdate, PlatformProgress)):
                    changed |= self._progress(event)
        self.log.write(lines)
        if changed and time.monotonic() - self._last_status > STATUS_EVERY:
            self._last_status = time.monotonic()
            events.publish_status(self.build)

    def _progress(self, event: StepUpdate | PlatformProgress) -> bool:
        row = self.platforms.get(event.platform)
        if row is None:
            return False
        fields: dict[str, object] = {}
        if isinstance(event, PlatformProgress):
            fields = {"done": min(event.done, event.total), "total": event.total}
        if row.state == BuildPlatform.State.PENDING:
            fields["state"] = BuildPlatform.State.RUNNING
        if isinstance(event, StepUpdate) and event.state == "error":
            fields["state"] = BuildPlatform.State.FAILED
        fields = {k: v for k, v in fields.items() if getattr(row, k) != v}
        if not fields:
            return False
        for key, value in fields.items():
            setattr(row, key, value)
        row.save(update_fields=list(fields))
        return True

    def run_buildx(self, specs: list[buildx.BuildSpec], which: list[int]) -> list[int]:
        """Run the given runs (indexes into specs) at once; their exit codes in that order."""
        for index in which:
            argv = specs[index].argv()[1:]
            node = self.streams[index].steps[0].node
            self.log.say(f"running docker buildx build on node {node} (argv: {' '.join(argv)})")
            for step in self.streams[index].steps:
                row = self.platforms[step.platform]
                row.started_at, row.finished_at, row.reason = timezone.now(), None, ""
                row.save(update_fields=["started_at", "finished_at", "reason"])
        codes = self.backend.build(
            [specs[i] for i in which],
            lambda n, chunk: self.on_output(which[n], chunk),
            self.heartbeat,
            float(settings.PORTAL_CANCEL_GRACE_SECONDS),
            lambda n, _code: self.run_ended(which[n]),
        )
        for index, code in zip(which, codes, strict=True):
            stream = self.streams[index]
            self._consume(index, stream.decoder.close())
            self.log.write(
                [
                    (e.platform, e.stream, e.text)
                    for e in stream.tracker.flush()
                    if isinstance(e, RawLine)
                ]
            )
            for step in stream.steps:
                row = self.platforms[step.platform]
                row.finished_at = row.finished_at or timezone.now()
                if code != 0:
                    errors = stream.tracker.errors
                    row.reason = f"on node {step.node}: " + (
                        errors[-1] if errors else f"buildx exited with status {code}"
                    )
                    row.state = BuildPlatform.State.FAILED
                row.save(update_fields=["finished_at", "reason", "state"])
        return codes

    def run_ended(self, index: int) -> None:
        """The timeline: each run's platforms end when that run's buildx does."""
        now = timezone.now()
        for step in self.streams[index].steps:
            self.platforms[step.platform].finished_at = now
        BuildPlatform.objects.filter(
            pk__in=[self.platforms[s.platform].pk for s in self.streams[index].steps]
        ).update(finished_at=now)

    def _registry_hiccup(self, index: int, since: int) -> bool:
        """Whether a run's last attempt (errors after index `since`) failed on a registry 5xx."""
        errors = " ".join(self.streams[index].tracker.errors[since:])
        return bool(REGISTRY_5XX.search(errors))

    def build_all(self, specs: list[buildx.BuildSpec]) -> list[int]:
        """All runs, with a registry 500 during a push retried (everything is cached then)."""
        which = list(range(len(specs)))
        seen = [0] * len(specs)
        codes = self.run_buildx(specs, which)
        for _ in range(PUSH_RETRIES):
            failed = [i for i, code in zip(which, codes, strict=True) if code != 0]
            hiccup = any(self._registry_hiccup(i, seen[i]) for i in failed)
            if not failed or not hiccup or self.heartbeat(force=True):
                break
            # Registries answer 5xx now and then (a filesystem registry rewrites a tag's
            # link in place, so a HEAD racing a PUT to that tag gets 500).
            self.log.say("the registry answered 500 during the push; pushing again")
            which = failed
            seen = [len(s.tracker.errors) for s in self.streams]
            codes = self.run_buildx(specs, which)
        result = [0] * len(specs)
        for index, code in zip(which, codes, strict=True):
            result[index] = code
        return result

    def failure_reason(self, codes: list[int]) -> str:
        """The first run that failed on its own (the others were stopped because of it)."""
        reason = self._first_failure(codes)
        if credentials.UNAUTHORIZED.search(reason):
            registry_host = credentials.registry_of(self.build.project.image)
            who = "the team's login" if self.docker_config else "no login (none saved)"
            return f"the registry {registry_host} refused the push with {who}: {reason}"
        return reason

    def _first_failure(self, codes: list[int]) -> str:
        failed = [i for i, code in enumerate(codes) if code != 0]
        for index in failed:
            stream = self.streams[index]
            errors = [e for e in stream.tracker.errors if "context canceled" not in e]
            if errors or len(failed) == 1:
                platforms = ", ".join(s.platform for s in stream.steps)
                what = errors[-1] if errors else f"buildx exited with status {codes[index]}"
                if len(self.streams) == 1:
                    return what
                return f"{platforms} on node {stream.steps[0].node}: {what}"
        return f"buildx exited with status {codes[failed[0]]}"

    def lost_nodes(self, codes: list[int]) -> list[str]:
        """A run that failed may mean its node is gone: check it now, not in a minute, so the
        next plan avoids it. Returns the nodes that are unreachable."""
        lost = []
        for pk in {self.streams[i].steps[0].node_id for i, code in enumerate(codes) if code}:
            node = self.backend.check(self.nodes[pk])
            if not node.reachable:
                self.log.say(f"node {node.name} is unreachable now: {node.last_error}")
                lost.append(node.name)
        return lost

    def pushed_digest(self, spec: buildx.BuildSpec) -> str:
        digest = str(spec.read_metadata().get("containerimage.digest", ""))
        if not digest.startswith("sha256:"):
            raise BuildFailed("buildx reported no pushed digest", Build.Fault.SYSTEM)
        return digest

    def verify_and_record(self, specs: list[buildx.BuildSpec]) -> None:
        project = self.build.project
        ref = parse_reference(project.image)
        try:
            digest = self.pushed_digest(specs[0]) if len(specs) == 1 else self.merge(ref, specs)
            summary = self.backend.read_index(ref, digest, self.heartbeat)
            registry.check_platforms(summary, list(self.build.platforms))
            for tag in self.build.tags[1:]:
                self.backend.tag(ref, digest, tag, self.heartbeat)
                self.log.say(f"tagged {project.image}:{tag}")
        except registry.RegistryError as exc:
            raise BuildFailed(f"verifying the pushed index: {exc}", Build.Fault.SYSTEM) from exc
        nodes = ", ".join(sorted({n.name for n in self.nodes.values()}))
        with transaction.atomic():
            for platform, row in self.platforms.items():
                row.digest = summary.platforms[platform]
                row.state = BuildPlatform.State.DONE
                row.done = max(row.done, row.total)
                row.save(update_fields=["digest", "state", "done"])
            for tag in self.build.tags:
                reference = f"{project.image}:{tag}"
                before = (
                    ManifestRecord.objects.filter(reference=reference)
                    .order_by("-pushed_at", "-pk")
                    .values_list("digest", flat=True)
                    .first()
                )
                ManifestRecord.objects.create(
                    previous_digest=before if before and before != digest else "",
                    team=project.team,
                    project=project,
                    build=self.build,
                    reference=reference,
                    digest=digest,
                    media_type=summary.media_type,
                    platforms=summary.platforms,
                    attestations=summary.attestations,
                    pushed_by=self.build.requested_by,
                    source_url=project.git_url,
                    source_ref=self.build.ref,
                    source_commit=self.build.commit,
                    builder_node=nodes,
                )
            self.build.digest = digest
            self.build.save(update_fields=["digest"])
        self.log.say(f"pushed {digest} with {', '.join(sorted(summary.platforms))}")
        if summary.attestations:
            self.log.say(f"{len(summary.attestations)} attestation manifest(s) kept apart")

    def merge(self, ref: ImageRef, specs: list[buildx.BuildSpec]) -> str:
        """Join the runs' pushes into the tag; each platform must keep the digest its run made."""
        sources: list[str] = []
        expected: dict[str, str] = {}
        for spec in specs:
            digest = self.pushed_digest(spec)
            sources.append(digest)
            try:
                expected |= self.backend.read_index(ref, digest, self.heartbeat).platforms
            except registry.RegistryError:
                # An engine without attestations pushes one platform as a plain manifest.
                if len(spec.platforms) != 1:
                    raise
                expected[spec.platforms[0]] = digest
        tag = self.build.tags[0]
        self.log.say(
            f"merging {len(sources)} pushes into {ref.repository}:{tag} "
            "(docker buildx imagetools create)"
        )
        digest = self.backend.merge(ref, sources, tag, self.oci_annotations(), self.heartbeat)
        merged = self.backend.read_index(ref, digest, self.heartbeat)
        for platform in self.build.platforms:
            if merged.platforms.get(platform) != expected.get(platform):
                raise registry.RegistryError(
                    f"the merged index has {merged.platforms.get(platform)} for {platform}, "
                    f"its run pushed {expected.get(platform)}"
                )
        return digest

    def finish(self, state: str, reason: str, fault: str = Build.Fault.NONE) -> None:
        if not self._mine().update(
            state=state, reason=reason, fault=fault, finished_at=timezone.now()
        ):
            return  # reaped meanwhile: the reaper's verdict stands
        if state != Build.State.SUCCEEDED:
            self.build.platform_states.exclude(state=BuildPlatform.State.DONE).update(
                state=BuildPlatform.State.FAILED
            )
        self.build.refresh_from_db()
        self.log.write(
            [(None, 0 if state == Build.State.SUCCEEDED else 2, f"Crossport: {state}: {reason}")]
        )
        events.publish_status(self.build)

    def _stopped(self) -> Outcome:
        if self._timed_out:
            limit = settings.PORTAL_BUILD_TIMEOUT_SECONDS
            return Build.State.FAILED, f"timed out after {limit}s", Build.Fault.USER
        return Build.State.CANCELLED, "cancelled on request", Build.Fault.NONE

    def execute(self) -> None:
        # The verdict is published only after the workspace is gone: whoever sees a finished
        # build finds nothing of it left on disk.
        if outcome := self._execute():
            self.finish(*outcome)

    def _execute(self) -> Outcome | None:
        workspace = Path(tempfile.mkdtemp(prefix=f"build-{self.build.pk}-", dir=_workspace_root()))
        try:
            with ExitStack() as stack:
                self.start()
                self.backend.check_push(parse_reference(self.build.project.image))
                if config := self.registry_login(workspace):
                    stack.enter_context(registry.using_config(config))
                src = self.checkout(workspace)
                if self.heartbeat(force=True):
                    return self._stopped()
                self.resolve_tags()
                dockerfile = self.render(workspace, src)
                # Node TLS material exists as files only while the build runs.
                certs = {
                    pk: stack.enter_context(cert_dir(n.tls(), parent=workspace))
                    for pk, n in self.nodes.items()
                }
                specs = self.specs(workspace, src, dockerfile, certs)
                codes = self.build_all(specs)
                # Pushed is pushed: a cancel that came after buildx finished still gets recorded.
                if any(codes) and self.heartbeat(force=True):
                    return self._stopped()
                if any(codes):
                    if lost := self.lost_nodes(codes):
                        reason = f"{self.failure_reason(codes)} (node {', '.join(lost)} is lost)"
                        raise BuildFailed(reason, Build.Fault.SYSTEM)
                    raise BuildFailed(self.failure_reason(codes))
                self.verify_and_record(specs)
            return Build.State.SUCCEEDED, f"pushed {', '.join(self.build.tags)}", Build.Fault.NONE
        except LeaseLost:
            log.warning("build %s: lease lost, stopping", self.build.pk)
            return None
        except ProcessStopped:
            return self._stopped()
        except BuildFailed as exc:
            return Build.State.FAILED, exc.reason, exc.fault
        except SealError as exc:
            return Build.State.FAILED, str(exc), Build.Fault.SYSTEM
        except outbound.Refused as exc:  # a git or registry host the guard does not allow
            return Build.State.FAILED, str(exc), Build.Fault.USER
        except Exception as exc:
            log.exception("build %s: internal error", self.build.pk)
            return (
                Build.State.FAILED,
                f"internal error: {type(exc).__name__}: {exc}",
                Build.Fault.SYSTEM,
            )
        finally:
            shutil.rmtree(workspace, ignore_errors=True)


@dataclass
class RunStream:
    """One buildx run of a build: its plan steps and its own output decoder and tracker."""

    steps: list[Step]
    decoder: StreamDecoder
    tracker: ProgressTracker


def _workspace_root() -> Path:
    root = Path(settings.PORTAL_WORKSPACE_DIR)
    root.mkdir(parents=True, exist_ok=True)
    return root


# --- the loop --------------------------------------------------------------------------------


def work_once(worker_id: str, backend: Backend | None = None) -> Build | None:
    """Reap, then claim and run at most one build. Returns the build it ran."""
    reap_stale()
    build = claim_next(worker_id)
    if build is not None:
        BuildRun(build, backend or DockerBackend(), worker_id).execute()
    return build


def run_forever(stop: threading.Event, worker_id: str | None = None, poll: float = 1.0) -> None:
    worker_id = worker_id or default_worker_id()
    log.info("build worker %s started", worker_id)
    backend = DockerBackend()
    next_node_check = 0.0
    while not stop.is_set():
        close_old_connections()
        try:
            # Node health is due once a minute or so; asking every poll would only cost queries.
            if time.monotonic() >= next_node_check:
                check_due_nodes(settings.PORTAL_NODE_CHECK_SECONDS)
                next_node_check = time.monotonic() + NODE_CHECK_POLL
            ran = work_once(worker_id, backend)
        except Exception:
            log.exception("worker loop error")
            ran = None
        if ran is None:
            stop.wait(poll)
    close_old_connections()
    log.info("build worker %s stopped", worker_id)
