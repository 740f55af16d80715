"""Services the views and the API call: queue, cancel, preview. No HTTP in here."""

from __future__ import annotations

import difflib
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

import lang_plugins
from builds import events, gitauth, gitsource, lint
from builds.gitauth import GitAccess
from builds.models import Build, BuildPlatform, BuildxBuilder
from builds.placement import plan_build
from builds.planner import STRATEGIES, PlanError, builder_name, validate_strategy
from builds.proc import ProcessStopped
from lang_plugins.base import Rendered
from portal import outbound, tagging
from portal.access import check_repository
from portal.grammar import InvalidValue, unique_values
from portal.grammar.git import validate_git_ref, validate_git_url
from portal.grammar.reference import validate_tag
from portal.models import Project, Team
from portal.private import private_dir
from portal.sealing import SealError

MAX_TAGS = 10


def generated_dockerfile(project: Project) -> Rendered:
    """What the plugin writes for this project; options the source decides show their defaults."""
    plugin = lang_plugins.get_plugin(project.language)
    options = plugin.clean_options(project.options)
    return plugin.render(options, mirror=settings.PORTAL_BASE_IMAGE_MIRROR)


def render_dockerfile(project: Project) -> Rendered:
    """The Dockerfile a build would use: the team's own if it set one, else the generated one."""
    generated = generated_dockerfile(project)
    if project.custom_dockerfile:
        return Rendered(dockerfile=project.custom_dockerfile, dockerignore=generated.dockerignore)
    return generated


def dockerfile_diff(generated: str, custom: str) -> str:
    lines = difflib.unified_diff(
        generated.splitlines(keepends=True),
        custom.splitlines(keepends=True),
        fromfile="generated",
        tofile="custom",
    )
    return "".join(lines)


def save_custom_dockerfile(project: Project, text: str) -> list[lint.Finding]:
    """Store the team's Dockerfile unless it has errors; returns the findings either way."""
    text = text.replace("\r\n", "\n")
    findings = lint.check(text)
    if not lint.has_errors(findings):
        generated = generated_dockerfile(project).dockerfile
        project.custom_dockerfile = "" if text.strip() == generated.strip() else text
        project.save(update_fields=["custom_dockerfile"])
    return findings


def clean_tags(tags: Iterable[Any] | None, default: list[str] | None = None) -> list[str]:
    """Tags or tag templates for a build (the project's templates when none are given)."""
    if tags is None:
        return list(default or ["latest"])
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise InvalidValue("tags", tags, "expected a list of tag names")

    def each() -> Iterable[str]:
        for tag in tags:
            if not isinstance(tag, str):
                raise InvalidValue("tags", tags, "expected a list of tag names")
            yield (
                tagging.validate_templates([tag])[0]
                if tagging.is_template(tag)
                else validate_tag(tag)
            )

    return unique_values(
        "tags", tags, each(), most=MAX_TAGS, noun="tags per build", empty="give at least one tag"
    )


def queue_build(
    project: Project,
    user: Any,
    ref: str | None = None,
    tags: Iterable[Any] | None = None,
    strategy: object = None,
) -> Build:
    """Validate, then queue a build. Raises InvalidValue (nothing saved) on bad input.

    The build gets a preview of its plan from the nodes as they are now; the worker that
    claims it plans again (nodes change) and that plan is the one that runs.
    """
    strategy = validate_strategy(strategy or project.strategy)
    name = builder_name(strategy)
    if name is not None and not BuildxBuilder.objects.filter(name=name).exists():
        raise InvalidValue("strategy", strategy, f"no buildx builder named {name}")
    ref = validate_git_ref(ref) if ref else project.ref
    # The prefix may have changed (or the image edited in the admin) since registration.
    check_repository("image", project.image, project.team)
    clean = clean_tags(tags, project.tag_templates)
    with transaction.atomic():
        build = Build.objects.create(
            project=project,
            ref=ref,
            tags=clean,
            platforms=list(project.platforms),
            requested_by=user if getattr(user, "is_authenticated", False) else None,
            strategy=strategy,
        )
        BuildPlatform.objects.bulk_create(
            BuildPlatform(build=build, platform=platform) for platform in project.platforms
        )
        build.plan = preview_plan(build)
        build.save(update_fields=["plan"])
        transaction.on_commit(events.wake_workers)
    return build


def rebuild(build: Build, user: Any) -> Build:
    """Queue the same build again: its project, commit (its ref when it never got one), tags
    (as resolved) and strategy. Raises InvalidValue when one no longer holds (a removed
    builder, a tag the project's image prefix now refuses)."""
    return queue_build(build.project, user, build.commit or build.ref, build.tags, build.strategy)


def preview_plan(build: Build) -> dict[str, Any]:
    """The plan as it would be now; when none is possible, why (the build still queues)."""
    try:
        dockerfile = render_dockerfile(build.project).dockerfile
    except (KeyError, ValueError):
        dockerfile = ""
    try:
        return plan_build(build, dockerfile).to_json() | {"preview": True}
    except PlanError as exc:
        return {"strategy": build.strategy, "preview": True, "steps": [], "error": str(exc)}


def cancel_build(build: Build) -> Build:
    """A queued build is cancelled at once; a running one is asked to stop (the worker obeys)."""
    now = timezone.now()
    if Build.objects.filter(pk=build.pk, state=Build.State.QUEUED).update(
        state=Build.State.CANCELLED,
        reason="cancelled before it started",
        finished_at=now,
        cancel_requested=True,
    ):
        build.close_platforms(Build.State.CANCELLED)
        build.refresh_from_db()
        events.publish_status(build)
    else:
        Build.objects.filter(pk=build.pk, state=Build.State.RUNNING).update(cancel_requested=True)
        build.refresh_from_db()
    return build


def strategy_choices() -> list[tuple[str, str]]:
    """(value, text) for the build form: the registry's strategies, then each buildx builder."""
    choices = [(key, f"{key}: {s.summary}") for key, s in STRATEGIES.items()]
    for builder in BuildxBuilder.objects.prefetch_related("nodes"):
        nodes = ", ".join(n.name for n in builder.nodes.all()) or "no nodes"
        choices.append((f"builder:{builder.name}", f"builder {builder.name} ({nodes})"))
    return choices


def ref_problem(git_url: str, ref: str, team: Team, project: Project | None) -> str | None:
    """For ProjectForm (registered in BuildsConfig.ready): why `ref` cannot be built from
    `git_url`, when the server says it has no such branch or tag; None when it has, or could
    not be asked (the build says why then). A saved project's key and token go only to its
    own URL; a new URL is asked with the team's pinned host keys alone."""
    try:
        if project is not None and project.git_url == git_url:
            access = gitauth.for_project(project)
        else:
            access = GitAccess(team_id=team.pk)
    except SealError:
        return None
    with tempfile.TemporaryDirectory(prefix="crossport-ls-remote-") as folder:
        found = gitsource.ref_advertised(git_url, ref, access, Path(folder))
    if found is False:
        return f"{git_url} has no branch or tag {ref!r}"
    return None


DETECT_TIMEOUT = 120


def workspace_root() -> Path:
    """Where builds and source detection keep their private folders (each removed after)."""
    return private_dir(Path(settings.PORTAL_WORKSPACE_DIR))


def detect_source(git_url: str, ref: str, access: GitAccess | None = None) -> dict[str, Any]:
    """Fetch the source and ask every plugin what it is: language, options and evidence.
    `access`: a project's key and token, or a team's pins and a one-off token (never stored).
    Raises InvalidValue for a bad URL/ref, SourceError when the fetch fails."""
    git_url, ref = validate_git_url(git_url), validate_git_ref(ref)
    outbound.check_git_url(git_url)
    with tempfile.TemporaryDirectory(prefix="detect-", dir=workspace_root()) as work:
        deadline = time.monotonic() + DETECT_TIMEOUT
        try:
            commit = gitsource.fetch(
                git_url,
                ref,
                Path(work) / "src",
                tick=lambda: time.monotonic() > deadline,
                access=access,
            )
        except ProcessStopped as exc:
            raise gitsource.SourceError(f"fetching took over {DETECT_TIMEOUT}s") from exc
        found = lang_plugins.detect(Path(work) / "src")
    if found is None:
        known = ", ".join(lang_plugins.all_plugins())
        return {
            "language": None,
            "options": {},
            "evidence": [f"no plugin recognised this source (known: {known})"],
            "commit": commit,
        }
    plugin, detection = found
    return {
        "language": plugin.key,
        "options": {k: v for k, v in detection.options.items() if v},
        "evidence": list(detection.evidence),
        "score": detection.score,
        "commit": commit,
    }
