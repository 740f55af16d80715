from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dockerfile_helpers import arg_values, parse
from lang_plugins import PLUGINS, detect
from lang_plugins.base import OptionError
from lang_plugins.go import GoPlugin

Golden = Callable[[str, str], None]
MakeTree = Callable[[dict[str, str]], Path]

INSTRUCTIONS = [
    "FROM",  # source, on the build platform
    "WORKDIR",
    "COPY",
    "RUN",
    "COPY",
    "ARG",
    "FROM",  # imports: the standard library packages the program imports, listed once
    "RUN",
    "FROM",  # std: those packages compiled for the target
    "ARG",
    "RUN",
    "FROM",  # build: the program, with the compiler cache seeded from std
    "ARG",
    "ARG",
    "RUN",
    "FROM",
    "COPY",
    "USER",
    "ENTRYPOINT",
]

# Values a user might type to break out of the ARG line. Accepted ones must stay inside it.
HOSTILE = [
    '"',
    "\\",
    "$HOME",
    "${HOME}",
    "'",
    "`id`",
    "$(id)",
    "--build-arg FOO=bar",
    '" && rm -rf / #',
    '-X "main.v=1"\\',
    "ARG X=1",
    '\\\\\\"',
    "-s -w -X main.msg=héllo中",
]
CONTROL = ["\nRUN rm -rf /", "a\x00b", "a\rb", "-s\t-w", "\x7f", "x\u2028RUN id"]
GO_MOD = "module example.com/hello\n\ngo 1.21.5\n"
MAIN_GO = "package main\n\nfunc main() {}\n"


def go() -> GoPlugin:
    plugin = PLUGINS["go"]
    assert isinstance(plugin, GoPlugin)
    return plugin


def render(raw: dict[str, object], mirror: str = "") -> str:
    plugin = go()
    return plugin.render(plugin.clean_options(raw), mirror=mirror).dockerfile


# --- registry entry and options ---


def test_registered_under_go() -> None:
    assert (go().key, go().label) == ("go", "Go")
    assert [o.name for o in go().options] == [
        "main",
        "ldflags",
        "go_version",
        "goprivate",
        "netrc_secret",
    ]


def test_defaults() -> None:
    assert go().clean_options({}) == {
        "main": "",
        "ldflags": "-s -w",
        "go_version": "1.19",
        "goprivate": "",
        "netrc_secret": "",
    }


@pytest.mark.parametrize("value", [".", "./cmd/server", "./cmd/my-app.v2", "./a/b_c/D9"])
def test_main_accepts_relative_package_paths(value: str) -> None:
    assert go().clean_options({"main": value})["main"] == value


@pytest.mark.parametrize(
    "value",
    [
        "cmd/server",
        "./",
        "./cmd/",
        "..",
        "./..",
        "./cmd/../..",
        "./...",
        "./cmd/...",
        "-o",
        "./-x",
        "/abs",
        ".//x",
        "./cmd/a b",
        "./cmd/$x",
        "./cmd/é",
        "./x;id",
    ],
)
def test_main_rejects_anything_else(value: str) -> None:
    with pytest.raises(OptionError) as info:
        go().clean_options({"main": value})
    assert info.value.option == "main"


@pytest.mark.parametrize("value", ["1.19", "1.22", "10.0"])
def test_go_version_accepts_major_minor(value: str) -> None:
    assert go().clean_options({"go_version": value})["go_version"] == value


@pytest.mark.parametrize(
    "value", ["1", "1.19.2", "1.x", "latest", "1.19 AS x", "١.١٩", "1.19-alpine"]
)
def test_go_version_rejects_anything_else(value: str) -> None:
    with pytest.raises(OptionError) as info:
        go().clean_options({"go_version": value})
    assert info.value.option == "go_version"


def test_ldflags_max_length() -> None:
    assert go().clean_options({"ldflags": "x" * 500})["ldflags"] == "x" * 500
    with pytest.raises(OptionError) as info:
        go().clean_options({"ldflags": "x" * 501})
    assert info.value.option == "ldflags"


# --- rendering ---


def test_render_mirror_ldflags_golden(golden: Golden) -> None:
    text = render(
        {
            "ldflags": '-s -w -X "main.version=$VERSION"',
            "main": "./cmd/hello",
            "go_version": "1.22",
        },
        mirror="localhost:5000/library",
    )
    golden("go_mirror_ldflags.Dockerfile", text)


def test_render_default_structure() -> None:
    commands = parse(render({}))
    assert [c.cmd for c in commands] == INSTRUCTIONS
    source, imports, std, build, runtime = (c for c in commands if c.cmd == "FROM")
    assert source.flags == std.flags == ("--platform=$BUILDPLATFORM",)
    assert source.value == ("golang:1.19", "AS", "source")
    assert imports.value == ("source", "AS", "imports")
    assert std.value == ("golang:1.19", "AS", "std")
    assert build.value == ("source", "AS", "build")
    assert runtime.value == ("alpine:3.20",)
    _, listing, precompile, compile_ = (c for c in commands if c.cmd == "RUN")
    assert "go list -e -deps" in listing.original and "TARGETARCH" not in listing.original
    assert "--mount=type=bind,from=imports,source=/imports,target=/imports" in precompile.flags
    # Each target has its compiler cache of its own, seeded from its standard library.
    assert (
        "--mount=type=cache,id=go-build-$TARGETOS-$TARGETARCH$TARGETVARIANT,"
        "target=/root/.cache/go-build,from=std,source=/std"
    ) in compile_.flags
    assert arg_values(commands) == {"LDFLAGS": "-s -w", "MAIN": "."}
    assert commands[-1].json and commands[-1].value == ("/usr/local/bin/app",)
    assert not any(c.cmd == "FROM" and c.value[0].startswith("--") for c in commands)


def test_render_without_syntax_directive() -> None:
    # The dockerfile frontend image cannot be pulled offline: use the builtin frontend.
    assert "syntax" not in render({}).splitlines()[0]


def test_render_mirror_and_options() -> None:
    commands = parse(
        render({"main": "./cmd/x", "go_version": "1.22"}, mirror="localhost:5000/library/")
    )
    assert [c.cmd for c in commands] == INSTRUCTIONS
    images = [c.value[0] for c in commands if c.cmd == "FROM"]
    assert images == [
        "localhost:5000/library/golang:1.22",
        "source",
        "localhost:5000/library/golang:1.22",
        "source",
        "localhost:5000/library/alpine:3.20",
    ]
    assert arg_values(commands)["MAIN"] == "./cmd/x"


def test_render_cleans_options_itself() -> None:
    # go_version lands unquoted in FROM: render must not trust an uncleaned mapping.
    with pytest.raises(OptionError) as info:
        go().render({"go_version": "1.19 AS x\nRUN id"})
    assert info.value.option == "go_version"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_ldflags_stay_inside_one_arg(value: str) -> None:
    default = parse(render({}))
    commands = parse(render({"ldflags": value}))
    assert [c.cmd for c in commands] == INSTRUCTIONS
    changed = [
        (before, after)
        for before, after in zip(default, commands, strict=True)
        if before.original != after.original
    ]
    assert len(changed) == 1
    assert changed[0][1].cmd == "ARG"
    assert changed[0][1].value[0].startswith("LDFLAGS=")
    assert arg_values(commands) == {"LDFLAGS": value, "MAIN": "."}


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("name", ["main", "go_version"])
def test_hostile_values_rejected_by_strict_options(name: str, value: str) -> None:
    with pytest.raises(OptionError) as info:
        go().clean_options({name: value})
    assert info.value.option == name


@pytest.mark.parametrize("value", CONTROL)
@pytest.mark.parametrize("name", ["main", "ldflags", "go_version"])
def test_control_characters_rejected(name: str, value: str) -> None:
    with pytest.raises(OptionError) as info:
        go().clean_options({name: value})
    assert info.value.option == name


def test_dockerignore() -> None:
    lines = go().render(go().clean_options({})).dockerignore.splitlines()
    for pattern in [".git", "Dockerfile", ".dockerignore", "**/.DS_Store"]:
        assert pattern in lines


# --- detection ---


def test_detect_root_main(make_tree: MakeTree) -> None:
    tree = make_tree({"go.mod": GO_MOD, "main.go": MAIN_GO, "util.go": "package main\n"})
    found = go().detect(tree)
    assert found is not None
    assert found.score == 0.9
    assert found.options == {"go_version": "1.21", "main": "."}
    assert "go.mod declares module example.com/hello" in found.evidence
    assert any("go directive 1.21.5" in line for line in found.evidence)
    assert go().clean_options(found.options) == {**go().clean_options({}), **found.options}


def test_detect_through_registry(make_tree: MakeTree) -> None:
    tree = make_tree({"go.mod": GO_MOD, "main.go": MAIN_GO})
    result = detect(tree)
    assert result is not None
    plugin, found = result
    assert plugin is go()
    assert found.options["main"] == "."


def test_detect_single_cmd(make_tree: MakeTree) -> None:
    tree = make_tree(
        {
            "go.mod": GO_MOD,
            "hello.go": "// Package hello says hello.\npackage hello\n",
            "cmd/hello/main.go": MAIN_GO,
            "cmd/README.md": "not a directory",
            "cmd/internal/lib.go": "package internal\n",
            "cmd/_old/main.go": MAIN_GO,
            "cmd/.hidden/main.go": MAIN_GO,
            "cmd/testdata/main.go": MAIN_GO,
        }
    )
    found = go().detect(tree)
    assert found is not None
    assert found.options["main"] == "./cmd/hello"
    assert "package main in ./cmd/hello" in found.evidence


def test_detect_several_cmds_picks_first_sorted(make_tree: MakeTree) -> None:
    tree = make_tree(
        {
            "go.mod": GO_MOD,
            "cmd/zeta/main.go": MAIN_GO,
            "cmd/alpha/main.go": MAIN_GO,
            "cmd/beta/main.go": MAIN_GO,
        }
    )
    found = go().detect(tree)
    assert found is not None
    assert found.options["main"] == "./cmd/alpha"
    note = next(line for line in found.evidence if "several" in line)
    assert "alpha, beta, zeta" in note
    assert "set main" in note


def test_detect_without_main_package(make_tree: MakeTree) -> None:
    tree = make_tree({"go.mod": GO_MOD, "lib.go": "package lib\n"})
    found = go().detect(tree)
    assert found is not None
    assert "main" not in found.options
    assert any("set main" in line for line in found.evidence)


def test_detect_no_go_mod(make_tree: MakeTree) -> None:
    tree = make_tree({"main.go": MAIN_GO, "README.md": "hi"})
    assert go().detect(tree) is None
    assert detect(tree) is None


def test_detect_missing_tree(tmp_path: Path) -> None:
    assert go().detect(tmp_path / "nope") is None


@pytest.mark.parametrize(
    ("gomod", "version"),
    [
        ("module m\ngo 1.21.5\n", "1.21"),
        ("module m\n\ngo 1.22rc1\n", "1.22"),
        ("module m\ngo 1.20 // pinned\n", "1.20"),
        ("module m\ngo\t1.9\n", "1.9"),
        ("module m\n  go 1.18\n", "1.18"),
        ("module m\ngo 01.020\n", "1.20"),
        ("module m\ntoolchain go1.22.0\ngo 1.21\n", "1.21"),
        ("module m\n", None),
        ("module m\ngo 1\n", None),
        ("module m\ngo 1.x\n", None),
        ("module m\n// go 1.30\n", None),
        ("module m\ngo 1.١٩\n", None),
    ],
)
def test_detect_go_directive(make_tree: MakeTree, gomod: str, version: str | None) -> None:
    found = go().detect(make_tree({"go.mod": gomod, "main.go": MAIN_GO}))
    assert found is not None
    assert found.options.get("go_version") == version


def test_detect_module_name_variants(make_tree: MakeTree) -> None:
    found = go().detect(make_tree({"go.mod": 'module "example.com/q" // x\n'}))
    assert found is not None
    assert "go.mod declares module example.com/q" in found.evidence
    found = go().detect(make_tree({"go.mod": "go 1.21\n"}))
    assert found is not None
    assert "go.mod found (it has no module line)" in found.evidence


@pytest.mark.parametrize(
    "header",
    [
        "// Copyright 2024.\n\n// Command hello.\npackage main\n",
        "/* licence\n   text */\npackage main\n",
        "\ufeff//go:build linux\n\npackage main\n",
        "//go:build !ignore\npackage main\n",
    ],
)
def test_detect_package_clause_after_comments(make_tree: MakeTree, header: str) -> None:
    found = go().detect(make_tree({"go.mod": GO_MOD, "main.go": header}))
    assert found is not None
    assert found.options.get("main") == "."


def test_detect_skips_ignored_and_test_files(make_tree: MakeTree) -> None:
    # A library with a `go run gen.go` generator and package main tests is not a command.
    tree = make_tree(
        {
            "go.mod": GO_MOD,
            "a_gen.go": "//go:build ignore\n\npackage main\n",
            "b_old.go": "// +build ignore\n\npackage main\n",
            "c_test.go": "package main\n",
            "_scratch.go": "package main\n",
            "lib.go": "package hello\n",
        }
    )
    found = go().detect(tree)
    assert found is not None
    assert "main" not in found.options


def test_detect_ignores_big_files(make_tree: MakeTree) -> None:
    big_comment = "// " + "x" * (1024 * 1024) + "\n"
    tree = make_tree({"go.mod": GO_MOD, "main.go": big_comment + MAIN_GO})
    found = go().detect(tree)
    assert found is not None
    assert "main" not in found.options
    assert go().detect(make_tree({"go.mod": big_comment + GO_MOD})) is None


def test_detect_does_not_follow_symlinks_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "cmd" / "evil").mkdir(parents=True)
    (outside / "go.mod").write_text(GO_MOD)
    (outside / "cmd" / "evil" / "main.go").write_text(MAIN_GO)
    tree = tmp_path / "src"
    (tree / "cmd").mkdir(parents=True)
    (tree / "go.mod").symlink_to(outside / "go.mod")
    assert go().detect(tree) is None

    (tree / "go.mod").unlink()
    (tree / "go.mod").write_text(GO_MOD)
    (tree / "cmd" / "evil").symlink_to(outside / "cmd" / "evil")
    (tree / "main.go").symlink_to(outside / "cmd" / "evil" / "main.go")
    found = go().detect(tree)
    assert found is not None
    assert "main" not in found.options


def test_detect_follows_symlinks_inside_the_tree(make_tree: MakeTree) -> None:
    tree = make_tree({"go.mod": GO_MOD, "src/app/main.go": MAIN_GO})
    (tree / "cmd").mkdir()
    (tree / "cmd" / "app").symlink_to(tree / "src" / "app")
    found = go().detect(tree)
    assert found is not None
    assert found.options["main"] == "./cmd/app"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_detect_never_opens_special_files(tmp_path: Path) -> None:
    tree = tmp_path / "src"
    tree.mkdir()
    os.mkfifo(tree / "go.mod")  # opening this for reading would block forever
    assert go().detect(tree) is None


def test_detect_does_not_suggest_invalid_cmd_names(make_tree: MakeTree) -> None:
    tree = make_tree({"go.mod": GO_MOD, "cmd/my app/main.go": MAIN_GO})
    found = go().detect(tree)
    assert found is not None
    assert "main" not in found.options
    assert any(line.startswith("not suggesting main ./cmd/my app") for line in found.evidence)


def test_detect_evidence_has_no_control_characters(make_tree: MakeTree) -> None:
    found = go().detect(make_tree({"go.mod": "module a\x1b[31mred\n"}))
    assert found is not None
    assert "go.mod declares module a?[31mred" in found.evidence
