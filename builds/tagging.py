"""Tag templates, as teams know them from CI: `{branch}`, `{short_sha}`, `{sha}`, `{semver}`
(v1.2.3 -> 1.2.3, 1.2, 1), `{latest}` (latest, only when building the default ref) and
literal tags. Templates are checked when saved; they are expanded after the checkout, when the
commit is known."""

from __future__ import annotations

import re
from collections.abc import Iterable

from builds.refs import InvalidValue, validate_tag

VARIABLES = ("branch", "short_sha", "sha", "semver", "latest")
MAX_TEMPLATES = 10
_TEMPLATE = re.compile(r"(?:[A-Za-z0-9_.-]|\{(?:" + "|".join(VARIABLES) + r")\})+")
_VARIABLE = re.compile(r"\{(\w+)\}")
SEMVER = re.compile(r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
FULL_SEMVER_TAG = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


def is_template(text: str) -> bool:
    return "{" in text


def validate_templates(items: Iterable[object]) -> list[str]:
    result: list[str] = []
    for item in items:
        if not isinstance(item, str) or not _TEMPLATE.fullmatch(item) or len(item) > 128:
            known = ", ".join("{" + v + "}" for v in VARIABLES)
            raise InvalidValue("tag template", item, f"use tag characters and {known}")
        if "{semver}" in item and item != "{semver}":
            raise InvalidValue("tag template", item, "{semver} stands alone (it makes 3 tags)")
        if not is_template(item):
            validate_tag(item)
        if item not in result:
            result.append(item)
    if not result:
        raise InvalidValue("tag templates", list(items), "give at least one")
    if len(result) > MAX_TEMPLATES:
        raise InvalidValue("tag templates", result, f"at most {MAX_TEMPLATES}")
    return result


def _branch(ref: str) -> str:
    """A ref as a tag: other characters become "-", as docker/metadata-action does."""
    text = re.sub(r"[^A-Za-z0-9_.-]", "-", ref.removeprefix("refs/heads/")).lstrip(".-")
    return text[:128] or "unknown"


def expand(templates: Iterable[str], *, ref: str, commit: str, default_ref: str) -> list[str]:
    """The tags for one build; templates that do not apply (semver on a branch) give none."""
    tags: list[str] = []
    values = {"branch": _branch(ref), "sha": commit, "short_sha": commit[:7]}
    for template in templates:
        if template == "{semver}":
            match = SEMVER.fullmatch(ref.removeprefix("refs/tags/"))
            new = [".".join(match.groups()[:n]) for n in (3, 2, 1)] if match else []
        elif template == "{latest}":
            new = ["latest"] if ref == default_ref else []
        else:
            new = [_VARIABLE.sub(lambda m: values[m.group(1)], template)]
        for tag in new:
            tag = validate_tag(tag)
            if tag not in tags:
                tags.append(tag)
    return tags
