"""Services the views and the API call: queue, cancel, preview. No HTTP in here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

import lang_plugins
from builds.models import Build, BuildPlatform
from builds.refs import InvalidValue, validate_git_ref, validate_tag
from lang_plugins.base import Rendered
from portal.models import Project

MAX_TAGS = 10


def render_dockerfile(project: Project) -> Rendered:
    """The Dockerfile a build would use; options decided by the source show their defaults."""
    plugin = lang_plugins.get_plugin(project.language)
    options = plugin.clean_options(project.options)
    return plugin.render(options, mirror=settings.PORTAL_BASE_IMAGE_MIRROR)


def clean_tags(tags: Iterable[Any] | None) -> list[str]:
    if tags is None:
        return ["latest"]
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise InvalidValue("tags", tags, "expected a list of tag names")
    result: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise InvalidValue("tags", tags, "expected a list of tag names")
        tag = validate_tag(tag)
        if tag not in result:
            result.append(tag)
    if not result:
        raise InvalidValue("tags", tags, "give at least one tag")
    if len(result) > MAX_TAGS:
        raise InvalidValue("tags", tags, f"at most {MAX_TAGS} tags per build")
    return result


def queue_build(
    project: Project, user: Any, ref: str | None = None, tags: Iterable[Any] | None = None
) -> Build:
    """Validate, then queue a build. Raises InvalidValue (nothing saved) on bad input."""
    ref = validate_git_ref(ref) if ref else project.ref
    clean = clean_tags(tags)
    with transaction.atomic():
        build = Build.objects.create(
            project=project,
            ref=ref,
            tags=clean,
            platforms=list(project.platforms),
            requested_by=user if getattr(user, "is_authenticated", False) else None,
        )
        BuildPlatform.objects.bulk_create(
            BuildPlatform(build=build, platform=platform) for platform in project.platforms
        )
    return build


def cancel_build(build: Build) -> Build:
    """A queued build is cancelled at once; a running one is asked to stop (the worker obeys)."""
    now = timezone.now()
    if Build.objects.filter(pk=build.pk, state=Build.State.QUEUED).update(
        state=Build.State.CANCELLED,
        reason="cancelled before it started",
        finished_at=now,
        cancel_requested=True,
    ):
        from builds import events

        build.refresh_from_db()
        events.publish_status(build)
    else:
        Build.objects.filter(pk=build.pk, state=Build.State.RUNNING).update(cancel_requested=True)
        build.refresh_from_db()
    return build
