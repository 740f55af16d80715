"""The Dockerfile a build uses, chosen in one place.

The plugin's, rendered with the project's options (an option left empty takes what the source
shows, e.g. the Go main package), or the project's own Dockerfile when it has one. Either is
refused when it would leave the team's cache namespace (``builds.lint.isolation_reason``): a
Dockerfile saved before that rule, or written by other means, is checked again here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.conf import settings

import lang_plugins
from builds.failures import BuildFailed
from builds.lint import isolation_reason
from portal.models import Project


def choose(project: Project, src: Path, say: Callable[[str], None]) -> tuple[str, str]:
    """(Dockerfile text, .dockerignore text) for a build of `project` from the tree `src`."""
    try:
        plugin = lang_plugins.get_plugin(project.language)
        options = plugin.clean_options(project.options)
    except (KeyError, ValueError) as exc:
        raise BuildFailed(f"project settings: {exc}") from exc
    detection = plugin.detect(src)
    for name, value in options.items():
        if not value and detection is not None and detection.options.get(name):
            options[name] = detection.options[name]
            say(f"option {name} detected from the source: {options[name]}")
    rendered = plugin.render(options, mirror=settings.PORTAL_BASE_IMAGE_MIRROR)
    text = rendered.dockerfile
    if project.custom_dockerfile:
        say("using the project's own Dockerfile instead of the generated one")
        text = project.custom_dockerfile
    if refused := isolation_reason(text):
        raise BuildFailed(f"the Dockerfile is refused: {refused}")
    return text, rendered.dockerignore
