from __future__ import annotations

import random

import dockerfile
import pytest

from lang_plugins.base import (
    Detection,
    Option,
    OptionError,
    Plugin,
)
from lang_plugins.dockerfile import dockerfile_quote, dockerfile_unquote, mirror_image

CONTROL_CHARS = ["\n", "\r", "\x00", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\u202e"]


def test_option_error_names_the_option() -> None:
    exc = OptionError("ldflags", "must be text")
    assert isinstance(exc, ValueError)
    assert (exc.option, exc.message) == ("ldflags", "must be text")
    assert str(exc) == "ldflags: must be text"


def test_clean_empty_means_default() -> None:
    option = Option(name="tag", label="Tag", default="latest")
    assert option.clean(None) == "latest"
    assert option.clean("") == "latest"
    assert option.clean("   ") == "latest"


def test_clean_strips_surrounding_spaces() -> None:
    assert Option(name="tag", label="Tag").clean("  v1 ") == "v1"


@pytest.mark.parametrize("value", [5, 1.5, True, b"bytes", ["a"], {"a": 1}])
def test_clean_rejects_non_text(value: object) -> None:
    with pytest.raises(OptionError) as info:
        Option(name="tag", label="Tag").clean(value)
    assert info.value.option == "tag"


@pytest.mark.parametrize("char", CONTROL_CHARS)
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_clean_rejects_control_characters(char: str, where: str) -> None:
    value = {"start": char + "abc", "middle": "ab" + char + "c", "end": "abc" + char}[where]
    with pytest.raises(OptionError) as info:
        Option(name="tag", label="Tag").clean(value)
    assert info.value.option == "tag"
    assert "control characters" in info.value.message
    assert f"U+{ord(char):04X}" in info.value.message


def test_clean_max_length() -> None:
    option = Option(name="tag", label="Tag", max_length=3)
    assert option.clean("abc") == "abc"
    with pytest.raises(OptionError, match=r"^tag: must be at most 3 characters$"):
        option.clean("abcd")


def test_clean_choices() -> None:
    option = Option(name="mode", label="Mode", default="a", choices=("a", "b"))
    assert option.clean("b") == "b"
    with pytest.raises(OptionError, match=r"^mode: must be one of: a, b$"):
        option.clean("c")


def test_clean_pattern_must_match_whole_value() -> None:
    option = Option(name="v", label="V", pattern=r"[0-9]+", pattern_message="digits only")
    assert option.clean("123") == "123"
    for bad in ["12a", "a12", "1 2"]:
        with pytest.raises(OptionError, match=r"^v: digits only$"):
            option.clean(bad)


def test_clean_pattern_without_message() -> None:
    with pytest.raises(OptionError, match=r"^v: has an invalid format$"):
        Option(name="v", label="V", pattern=r"[0-9]+").clean("x")


def test_option_with_invalid_default_fails_at_definition() -> None:
    with pytest.raises(OptionError):
        Option(name="v", label="V", default="x", pattern=r"[0-9]+")


class TwoOptions(Plugin):
    key = "two"
    label = "Two"
    options = (Option(name="a", label="A", default="1"), Option(name="b", label="B"))


def test_clean_options_fills_every_option() -> None:
    assert TwoOptions().clean_options({}) == {"a": "1", "b": ""}
    assert TwoOptions().clean_options({"b": " x "}) == {"a": "1", "b": "x"}


def test_clean_options_rejects_unknown_names() -> None:
    with pytest.raises(OptionError) as info:
        TwoOptions().clean_options({"a": "1", "zzz": "2"})
    assert info.value.option == "zzz"
    assert str(info.value) == "zzz: unknown option for two"


def test_clean_options_error_names_the_failing_option() -> None:
    with pytest.raises(OptionError) as info:
        TwoOptions().clean_options({"a": "ok", "b": "bad\n"})
    assert info.value.option == "b"


def test_base_render_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        TwoOptions().render({})


@pytest.mark.parametrize("score", [-0.1, 1.5, float("nan")])
def test_detection_score_is_between_0_and_1(score: float) -> None:
    with pytest.raises(ValueError):
        Detection(score=score, options={}, evidence=[])


@pytest.mark.parametrize(
    ("mirror", "expected"),
    [
        ("", "golang:1.19"),
        ("localhost:5000/library", "localhost:5000/library/golang:1.19"),
        ("localhost:5000/library/", "localhost:5000/library/golang:1.19"),
        ("registry.example:443", "registry.example:443/golang:1.19"),
    ],
)
def test_mirror_image(mirror: str, expected: str) -> None:
    assert mirror_image("golang:1.19", mirror) == expected


@pytest.mark.parametrize("mirror", ["local host:5000", "localhost:5000\n", "a\x00b", "x\ty"])
def test_mirror_image_rejects_whitespace_and_control_chars(mirror: str) -> None:
    with pytest.raises(ValueError):
        mirror_image("golang:1.19", mirror)


def test_mirror_image_rejects_bad_names() -> None:
    for name in ["", "golang:1.19 AS x", "golang\n"]:
        with pytest.raises(ValueError):
            mirror_image(name, "")


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("", '""'),
        ("-s -w", '"-s -w"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("$HOME", '"\\$HOME"'),
        ("'", '"\'"'),
        ("ends with \\", '"ends with \\\\"'),
    ],
)
def test_dockerfile_quote(value: str, quoted: str) -> None:
    assert dockerfile_quote(value) == quoted
    assert dockerfile_unquote(quoted) == value


@pytest.mark.parametrize("char", CONTROL_CHARS)
def test_dockerfile_quote_rejects_control_chars(char: str) -> None:
    with pytest.raises(ValueError):
        dockerfile_quote(f"a{char}b")


@pytest.mark.parametrize(
    "word",
    ["", '"', "abc", '"abc', 'abc"', '"a"b"', '"$HOME"', '"abc\\"', "'abc'"],
)
def test_dockerfile_unquote_rejects_what_quote_never_produces(word: str) -> None:
    with pytest.raises(ValueError):
        dockerfile_unquote(word)


def test_dockerfile_unquote_keeps_other_backslashes_literal() -> None:
    # BuildKit: inside double quotes a backslash escapes only \, " and $.
    assert dockerfile_unquote('"a\\nb\\ c"') == "a\\nb\\ c"


def _arg_value(source: str) -> tuple[int, str]:
    """Number of instructions and the raw value token of the single ARG in ``source``."""
    commands = dockerfile.parse_string(source)
    (token,) = commands[0].value
    name, _, value = token.partition("=")
    assert name == "X"
    return len(commands), value


def test_quoted_values_survive_the_dockerfile_parser() -> None:
    alphabet = list("ab -=_.,:;/\\\"'$`{}()[]<>|&*?!#%@~^+") + ["é", "中", "\u00a0", "🙂"]
    rng = random.Random(1234)
    samples = ["\\", "\\\\", '"', '\\"', "$", "${X}", "$(id)", "`id`", "#", " # x", "\\ "]
    samples += ["".join(rng.choices(alphabet, k=rng.randint(0, 40))) for _ in range(500)]
    for value in samples:
        count, token = _arg_value(f"ARG X={dockerfile_quote(value)}\n")
        assert count == 1, value
        assert dockerfile_unquote(token) == value
