"""Tag templates, as teams know them from CI: `{branch}`, `{short_sha}`, `{sha}`, `{semver}`
(git tag v1.2.3 -> 1.2.3, 1.2, 1; a branch of that name gives none), `{latest}` (latest, only
when building the default branch) and literal tags. Templates are checked when saved; they
are expanded after the checkout, when the commit is known."""

from __future__ import annotations

import re
from collections.abc import Iterable

from portal.grammar import InvalidValue
from portal.grammar.reference import validate_tag

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
        for alone in ("{semver}", "{latest}"):
            if alone in item and item != alone:
                raise InvalidValue("tag template", item, f"{alone} stands alone")
        # Expanded with the longest values a build can give, it must still be a valid tag.
        if item not in ("{semver}", "{latest}"):
            validate_tag(_fill(item, ref="b" * 300, commit="f" * 40))
        if item not in result:
            result.append(item)
    if not result:
        raise InvalidValue("tag templates", list(items), "give at least one")
    if len(result) > MAX_TEMPLATES:
        raise InvalidValue("tag templates", result, f"at most {MAX_TEMPLATES}")
    return result


def _branch(ref: str, room: int = 128) -> str:
    """A ref as a tag: other characters become "-", as docker/metadata-action does."""
    name = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    text = re.sub(r"[^A-Za-z0-9_.-]", "-", name).lstrip(".-")
    return text[:room] or "unknown"


def _fill(template: str, *, ref: str, commit: str) -> str:
    """One template's tag; the branch is cut so that the whole stays within 128 characters."""
    fixed = len(_VARIABLE.sub("", template)) + 40 * template.count("{sha}")
    fixed += 7 * template.count("{short_sha}")
    room = max(1, (128 - fixed) // max(1, template.count("{branch}")))
    values = {"branch": _branch(ref, room), "sha": commit, "short_sha": commit[:7]}
    return _VARIABLE.sub(lambda m: values[m.group(1)], template)


def expand(
    templates: Iterable[str], *, ref: str, commit: str, default_ref: str, git_tag: str | None
) -> list[str]:
    """The tags for one build; templates that do not apply (semver on a branch) give none.
    `git_tag` is the tag the checkout found, if `ref` named one."""
    tags: list[str] = []
    for template in templates:
        if template == "{semver}":
            match = SEMVER.fullmatch(git_tag) if git_tag else None
            new = [".".join(match.groups()[:n]) for n in (3, 2, 1)] if match else []
        elif template == "{latest}":
            default = default_ref.removeprefix("refs/heads/")
            new = ["latest"] if not git_tag and ref.removeprefix("refs/heads/") == default else []
        else:
            new = [_fill(template, ref=ref, commit=commit)]
        for tag in new:
            tag = validate_tag(tag)
            if tag not in tags:
                tags.append(tag)
    return tags


def version(tags: list[str]) -> str:
    """The OCI version of an image with these tags: its x.y.z tag, "" when it has none."""
    return next((t for t in tags if FULL_SEMVER_TAG.fullmatch(t)), "")
