"""What one claimed build does, as a short pipeline of named steps.

The worker (``builds.worker``) claims a build with its plan (which node builds which platform,
how) and hands it here with a lease; each step is a method of :class:`BuildRun` that a test can
call alone, and :meth:`BuildRun.execute` runs them in this order:

1. ``start``: load the plan's nodes and platform rows; say what will run where.
2. ``registry_login``: the team's login for the image's registry, as a private DOCKER_CONFIG.
3. ``fetch_source``: clone the project at the requested ref; remember the commit (and git tag).
4. ``resolve_tags``: expand tag templates; refuse a version tag the ledger says is taken.
5. ``render``: the plugin's Dockerfile (or the project's own) and its .dockerignore
   (``builds.dockerfiles``); ``check_base_images``: each base image offers every platform it
   is needed for (``builds.guardrails``); ``use_secrets``: the team secrets it mounts.
6. ``plan_runs``: one ``docker buildx build`` per node of the plan (``builds.buildruns``),
   each pushing to a staging tag, with OCI labels and provenance (and an SBOM if configured).
7. ``build_platforms``: run them at once, following their output; say why one failed.
8. ``verify``: each platform's binary fits its platform, then the build's tags point at the
   pushes (merged when several runs pushed) and hold every platform (``builds.publish``).
9. ``record``: the platform digests, and one ledger row per tag (``builds.ledger.record``).

A step that cannot go on raises :class:`BuildFailed` with the reason the build's headline shows
and whose fault it is. The workspace (source, Dockerfile, registry login, node TLS files) is
removed before the verdict is published: whoever sees a finished build finds nothing of it on disk.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path

from django.conf import settings
from django.db import transaction

from builds import (
    builders,
    buildkitnodes,
    buildx,
    credentials,
    dockerfiles,
    events,
    gitsource,
    guardrails,
    ledger,
    registry,
    services,
)
from builds.backend import Backend
from builds.buildlog import BuildLog
from builds.buildruns import BuildxRuns
from builds.buildsecrets import BuildSecrets, prepare_secrets
from builds.dockerhost import cert_dir
from builds.failures import BuildFailed
from builds.gitauth import for_project as git_access
from builds.lease import Lease, LeaseLost
from builds.models import Build, BuilderNode, BuildPlatform
from builds.planner import Plan, builder_name, cache_tag, staging_tag
from builds.proc import ProcessStopped
from builds.publish import Publisher
from portal import outbound, tagging
from portal.grammar import InvalidValue
from portal.grammar.reference import parse_reference
from portal.sealing import SealError

log = logging.getLogger(__name__)

Outcome = tuple[str, str, str]  # state, reason, fault


class BuildRun:
    def __init__(
        self,
        build: Build,
        backend: Backend,
        worker_id: str,
        handback: threading.Event | None = None,
    ) -> None:
        self.build = build
        self.backend = backend
        self.lease = Lease(build, worker_id, handback)
        self.log = BuildLog(build)
        claimed = build.plan.get("steps") and not build.plan.get("preview")
        self.plan = Plan.from_json(build.plan) if claimed else None
        self.platforms: dict[str, BuildPlatform] = {}
        self.nodes: dict[int, BuilderNode] = {}
        self.runs = BuildxRuns(build, self.platforms, self.nodes, self.log, backend, self.lease)
        self.docker_config = ""  # set when the team has a login for the image's registry
        self.git_tag: str | None = None  # set by fetch_source when the ref is a git tag
        self.secrets = BuildSecrets()  # set by use_secrets
        self.sbom_generator = ""  # set by check_base_images when the scanner image is there

    # steps ------------------------------------------------------------------------------
    def start(self) -> None:
        build = self.build
        if self.plan is None:
            raise BuildFailed("the build has no plan (it was not claimed by a worker)")
        self.platforms.update(
            {row.platform: row for row in build.platform_states.select_related("node")}
        )
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
        for steps in runs:  # a named builder's one run spreads over its nodes
            by_node: dict[str, list[str]] = {}
            for s in steps:
                by_node.setdefault(s.node, []).append(f"{s.platform} ({s.method})")
            for name, done_here in by_node.items():
                self.log.say(f"  on node {name}: " + ", ".join(done_here))
        events.publish_status(build)

    def registry_login(self, workspace: Path) -> str:
        """The team's login for the image's registry, as a DOCKER_CONFIG in the workspace
        (removed with it, whatever way the build ends)."""
        project = self.build.project
        login = credentials.for_image(project.team_id, project.image)
        if login is None:
            return ""
        named = [self.buildx_builder(n) for n in self.nodes.values()]
        layer = builders.config_dir() if any(named) else None
        credentials.write_config(workspace / "docker-config", [login], layer=layer)
        self.log.say(f"pushing with the team's login for {login.registry} (user {login.username})")
        self.docker_config = str(workspace / "docker-config")
        return self.docker_config

    def fetch_source(self, workspace: Path) -> Path:
        project = self.build.project
        self.log.say(f"fetching {project.git_url} at {self.build.ref}")
        src = workspace / "src"
        try:
            access = git_access(project)  # the project's deploy key and token, nothing else
            renew = self.lease.renew
            commit = self.backend.fetch(project.git_url, self.build.ref, src, renew, access)
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
        ref = parse_reference(project.image)
        for tag in tags:
            try:
                in_registry = functools.partial(self.backend.exists, ref, tag, self.lease.renew)
                taken = ledger.version_taken(ref.repository, tag, in_registry)
            except registry.RegistryError as exc:
                raise BuildFailed(f"checking tag {tag}: {exc}", Build.Fault.SYSTEM) from exc
            if taken:
                raise BuildFailed(f"tag {tag} already exists and versions are immutable")

    def render(self, workspace: Path, src: Path) -> Path:
        text, dockerignore = dockerfiles.choose(self.build.project, src, self.log.say)
        dockerfile = workspace / "Dockerfile"
        dockerfile.write_text(text)
        # BuildKit reads <Dockerfile>.dockerignore before the context's own .dockerignore.
        (workspace / "Dockerfile.dockerignore").write_text(dockerignore)
        self.build.dockerfile = text
        self.build.save(update_fields=["dockerfile"])
        return dockerfile

    def check_base_images(self) -> None:
        """Before any run: every base image offers every platform it is needed for (a stage on
        $BUILDPLATFORM: the native platform of the node building)."""
        assert self.plan is not None
        pairs = []
        for step in self.plan.steps:
            node = self.nodes[step.node_id]
            pairs.append((step.platform, (node.native_platforms or [step.platform])[0]))
        tick = self.lease.renew
        check = guardrails.BaseImageCheck(
            self.log.say, lambda image: self.backend.base_platforms(image, tick)
        )
        check.check(self.build.dockerfile, pairs)
        self.sbom_generator = check.sbom_generator(pairs)

    def use_secrets(self, workspace: Path) -> None:
        """The team secrets the build names, as files in the workspace (builds.buildsecrets);
        from here on the log hides their values."""
        self.secrets = prepare_secrets(self.build.project, self.build.dockerfile, workspace)
        self.log.redact = self.secrets.redactor()
        if self.secrets.mounts:
            self.log.say(f"build secrets, mounted only: {', '.join(self.secrets.mounts)}")

    def plan_runs(
        self, workspace: Path, src: Path, dockerfile: Path, certs: dict[int, Path | None]
    ) -> None:
        """One buildx run per group of the plan, each to a staging tag (the docker driver cannot
        push by digest); the build's tags come after the checks (builds.publish)."""
        assert self.plan is not None
        project = self.build.project
        groups = self.plan.runs
        for index, steps in enumerate(groups):
            node = self.nodes[steps[0].node_id]
            builder = self.buildx_builder(node)
            platforms = [s.platform for s in steps]
            cache = f"{project.image}:{cache_tag(platforms)}" if project.registry_cache else ""
            # Attestations need an index: BuildKit's own push (a builder, or containerd).
            attest = bool(builder) or node.image_store == "containerd"
            spec = buildx.BuildSpec(
                builder=builder,
                docker_config=self.docker_config or (str(builders.config_dir()) if builder else ""),
                context=src,
                dockerfile=dockerfile,
                platforms=platforms,
                # One tag per push: the others are added afterwards (registry.tag_manifest).
                tags=[f"{project.image}:{staging_tag(self.build.pk, platforms)}"],
                metadata_file=workspace / f"metadata-{index}.json",
                docker_host="" if builder else node.endpoint,
                cert_path=None if builder else certs.get(node.pk),
                network=settings.PORTAL_BUILD_NETWORK,
                # The same OCI facts on every image config and on the index itself.
                labels=buildx.oci_facts(self.build),
                annotations={f"index:{k}": v for k, v in buildx.oci_facts(self.build).items()},
                push_once=not builder and node.image_store == "containerd",
                provenance="mode=max" if attest else "",
                sbom_generator=self.sbom_generator if attest else "",
                secrets=self.secrets.mounts,
                # Warm on any node: the project's layers of these platforms, in its registry.
                cache_ref=cache,
                # The team's cache mounts are apart from every other team's.
                build_args={**self.secrets.build_args, buildx.CACHE_NS_ARG: project.team.opaque_id},
            )
            self.runs.add(spec, steps)

    def buildx_builder(self, node: BuilderNode) -> str:
        """The named buildx builder a run on `node` goes through: the strategy's, a BuildKit
        node's own (builds.buildkitnodes), or none: the engine's default, by DOCKER_HOST."""
        assert self.plan is not None
        return builder_name(self.plan.strategy) or buildkitnodes.builder_for(node)

    def build_platforms(self) -> Outcome | None:
        """All runs; None when every one pushed, the verdict when stopped, raises on failure."""
        codes = self.runs.run_all()
        if not any(codes):
            return None
        # Pushed is pushed: a cancel that came after buildx finished still gets recorded.
        if self.lease.renew(force=True):
            return self._stopped()
        reason = self.runs.failure_reason(codes, logged_in=bool(self.docker_config))
        if lost := self.runs.lost_nodes(codes):
            raise BuildFailed(f"{reason} (node {', '.join(lost)} is lost)", Build.Fault.SYSTEM)
        raise BuildFailed(reason)

    def verify(self, workspace: Path) -> registry.IndexSummary:
        """The staged pushes, each platform's binary checked, then the build's tags pointed at
        them and every platform in the index they name (builds.publish)."""
        publisher = Publisher(
            self.build,
            self.backend,
            self.lease,
            self.log,
            self.platforms,
            buildx.oci_facts(self.build),
        )
        try:
            sources, platforms, attestations = publisher.staged(self.runs.specs)
            publisher.check_architectures(platforms, workspace / "images")
            return publisher.publish(sources, platforms, attestations)
        except registry.RegistryError as exc:
            raise BuildFailed(f"verifying the pushed index: {exc}", Build.Fault.SYSTEM) from exc

    def record(self, summary: registry.IndexSummary) -> None:
        build, project = self.build, self.build.project
        nodes = ", ".join(sorted({n.name for n in self.nodes.values()}))
        with transaction.atomic():
            for platform, row in self.platforms.items():
                row.digest = summary.platforms[platform]
                row.state = BuildPlatform.State.DONE
                row.done = max(row.done, row.total)
                row.save(update_fields=["digest", "state", "done"])
            for tag in build.tags:
                ledger.record(
                    reference=f"{project.image}:{tag}",
                    summary=summary,
                    team=project.team,
                    project=project,
                    build=build,
                    pushed_by=build.requested_by,
                    source=(project.git_url, build.ref, build.commit),
                    builder_node=nodes,
                )
            build.digest = summary.digest
            build.save(update_fields=["digest"])
        self.log.say(f"pushed {summary.digest} with {', '.join(sorted(summary.platforms))}")
        if summary.attestations:
            self.log.say(f"{len(summary.attestations)} attestation manifest(s) kept apart")

    # the verdict ------------------------------------------------------------------------
    def finish(self, state: str, reason: str, fault: str = Build.Fault.NONE) -> None:
        if not self.lease.end(state=state, reason=reason, fault=fault):
            return  # reaped meanwhile: the reaper's verdict stands
        self.build.close_platforms(state)
        self.build.refresh_from_db()
        self.log.write(
            [(None, 0 if state == Build.State.SUCCEEDED else 2, f"Crossport: {state}: {reason}")]
        )
        events.publish_status(self.build)

    def _stopped(self) -> Outcome:
        if self.lease.handing_back:
            if self.lease.requeue():
                self.log.say(
                    f"worker {self.lease.worker_id} is stopping (a restart or an upgrade) and its "
                    "drain time is up: the build goes back to the queue and starts again"
                )
                self.build.refresh_from_db()
                events.publish_status(self.build)
            return Build.State.QUEUED, "handed back to the queue", Build.Fault.NONE
        if self.lease.timed_out:
            limit = settings.PORTAL_BUILD_TIMEOUT_SECONDS
            return Build.State.FAILED, f"timed out after {limit}s", Build.Fault.USER
        return Build.State.CANCELLED, "cancelled on request", Build.Fault.NONE

    def execute(self) -> None:
        if outcome := self._execute():
            state, reason, fault = outcome
            if state != Build.State.QUEUED:  # queued again: the lease did it (`_stopped`)
                self.finish(state, self.log.redact(reason), fault)

    def _execute(self) -> Outcome | None:
        root = services.workspace_root()
        workspace = Path(tempfile.mkdtemp(prefix=f"build-{self.build.pk}-", dir=root))
        try:
            with ExitStack() as stack:
                self.start()
                self.backend.check_push(parse_reference(self.build.project.image))
                if config := self.registry_login(workspace):
                    stack.enter_context(registry.using_config(config))
                src = self.fetch_source(workspace)
                if self.lease.renew(force=True):
                    return self._stopped()
                self.resolve_tags()
                dockerfile = self.render(workspace, src)
                self.check_base_images()
                self.use_secrets(workspace)
                # Node TLS material exists as files only while the build runs.
                certs = {
                    pk: stack.enter_context(cert_dir(n.tls(), parent=workspace))
                    for pk, n in self.nodes.items()
                }
                self.plan_runs(workspace, src, dockerfile, certs)
                if stopped := self.build_platforms():
                    return stopped
                self.record(self.verify(workspace))
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
