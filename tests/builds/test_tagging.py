"""Tag templates: validation and expansion."""

from __future__ import annotations

import pytest

from builds.refs import InvalidValue
from builds.tagging import expand, validate_templates

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("main", ["main", "0123456", "latest"]),
        ("v1.2.3", ["1.2.3", "1.2", "1", "v1.2.3", "0123456"]),
        ("feature/Login#2", ["feature-Login-2", "0123456"]),
        ("1.10.0", ["1.10.0", "1.10", "1", "0123456"]),
        ("v1.2", ["v1.2", "0123456"]),
    ],
)
def test_expansion(ref: str, expected: list[str]) -> None:
    templates = validate_templates(["{semver}", "{branch}", "{short_sha}", "{latest}"])
    assert expand(templates, ref=ref, commit=SHA, default_ref="main") == expected


def test_literal_and_mixed_templates() -> None:
    templates = validate_templates(["stable", "build-{short_sha}", "{sha}"])
    assert expand(templates, ref="main", commit=SHA, default_ref="main") == [
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
