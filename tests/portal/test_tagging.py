"""Tag templates: validation and expansion."""

from __future__ import annotations

import pytest

from portal.grammar import InvalidValue
from portal.tagging import expand, validate_templates, version

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("ref", "git_tag", "expected"),
    [
        ("main", None, ["main", "0123456", "latest"]),
        ("refs/heads/main", None, ["main", "0123456", "latest"]),
        ("v1.2.3", "v1.2.3", ["1.2.3", "1.2", "1", "v1.2.3", "0123456"]),
        ("refs/tags/v1.2.3", "v1.2.3", ["1.2.3", "1.2", "1", "v1.2.3", "0123456"]),
        # A branch named like a version is not a release.
        ("v1.2.3", None, ["v1.2.3", "0123456"]),
        # A tag named like the default branch is not the default branch.
        ("main", "main", ["main", "0123456"]),
        ("feature/Login#2", None, ["feature-Login-2", "0123456"]),
        ("1.10.0", "1.10.0", ["1.10.0", "1.10", "1", "0123456"]),
        ("v1.2", "v1.2", ["v1.2", "0123456"]),
    ],
)
def test_expansion(ref: str, git_tag: str | None, expected: list[str]) -> None:
    templates = validate_templates(["{semver}", "{branch}", "{short_sha}", "{latest}"])
    assert expand(templates, ref=ref, commit=SHA, default_ref="main", git_tag=git_tag) == expected


def test_version_is_the_full_semver_tag() -> None:
    assert version(["latest", "1.2.3", "1.2", "1"]) == "1.2.3"
    assert version(["main", "0123456"]) == ""  # no x.y.z tag: no version label


def test_literal_and_mixed_templates() -> None:
    templates = validate_templates(["stable", "build-{short_sha}", "{sha}"])
    assert expand(templates, ref="main", commit=SHA, default_ref="main", git_tag=None) == [
        "stable",
        "build-0123456",
        SHA,
    ]


@pytest.mark.parametrize(
    "bad", ["{nope}", "has space", "{semver}-x", "-x", "", "a\nb", "{branch", "x" * 129, 5]
)
def test_bad_templates_are_refused(bad: object) -> None:
    with pytest.raises(InvalidValue):
        validate_templates([bad])


@pytest.mark.parametrize(
    "bad", ["x-{latest}", "{latest}{latest}", "-{branch}", ".{branch}", "{sha}{sha}{sha}{sha}"]
)
def test_templates_that_could_expand_to_a_bad_tag_are_refused(bad: str) -> None:
    with pytest.raises(InvalidValue):
        validate_templates([bad])


def test_long_branches_are_cut_to_fit_the_tag() -> None:
    tags = expand(
        validate_templates(["{branch}-{sha}"]),
        ref="b" * 200,
        commit=SHA,
        default_ref="main",
        git_tag=None,
    )
    assert len(tags[0]) == 128 and tags[0].endswith(SHA)


def test_a_tag_ref_gives_its_name_as_branch() -> None:
    assert expand(
        ["{branch}"], ref="refs/tags/v1.0.0", commit=SHA, default_ref="main", git_tag="v1.0.0"
    ) == ["v1.0.0"]
