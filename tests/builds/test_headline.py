"""The failed build's headline: the real cause lifted from the failing step's output, on a
stream captured from a real three-platform Go build with a compile error (buildx 0.13,
BuildKit in Docker 26), plus the plugins' error-line shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

import lang_plugins
from builds.headline import error_line, headline, short_command, stage_order
from builds.models import Build, BuildPlatform
from builds.progress import ProgressTracker
from builds.rawjson import StreamDecoder
from builds.worker import work_once
from fakes import FakeBackend

DATA = Path(__file__).parent / "data"
GO_ERROR = DATA / "go-compile-error-3platforms.rawjson"
GO_DOCKERFILE = """\
FROM --platform=$BUILDPLATFORM localhost:5000/library/golang:1.19 AS build
RUN go build
FROM localhost:5000/library/alpine:3.20
COPY --from=build /out/app /usr/local/bin/app
"""
HEADLINE = "linux/arm64, step 6/8 (go build): ./main.go:4:2: undefined: nosuchfunc"


def tracked(path: Path) -> ProgressTracker:
    decoder, tracker = StreamDecoder(), ProgressTracker()
    for item in decoder.feed_bytes(path.read_bytes()) + decoder.close():
        tracker.consume(item)
    return tracker


def test_go_compile_error_is_the_headline() -> None:
    tracker = tracked(GO_ERROR)
    # Only arm64's step failed on its own; BuildKit cancelled amd64's and arm/v7's.
    assert [f.platform for f in tracker.failures] == ["linux/arm64"]
    go = lang_plugins.get_plugin("go").error_patterns
    lifted = headline(tracker.failures[0], go, GO_DOCKERFILE)
    assert lifted.text == HEADLINE
    assert (lifted.step, lifted.command, lifted.platform) == ("6/8", "go build", "linux/arm64")
    assert lifted.line == "./main.go:4:2: undefined: nosuchfunc"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "python",
            "linux/amd64, step 3/11 (python): ERROR: Could not find a version that satisfies "
            "the requirement nosuchpkg-crossport==1.0 (from versions: none)",
        ),
        (
            "java",
            "linux/amd64, step 4/8 (RUN script): [ERROR] "
            "/src/src/main/java/com/example/crossport/Main.java:[8,28] cannot find symbol",
        ),
    ],
)
def test_captured_python_and_java_failures(language: str, expected: str) -> None:
    """Streams captured from the plugins' own Dockerfiles on the real stack: pip asked for a
    package the index does not have; javac (through Maven) met an unknown method."""
    name = {"python": "python-pip-error", "java": "java-compile-error"}[language]
    tracker = tracked(DATA / f"{name}-3platforms.rawjson")
    dockerfile = (DATA / f"{name}.Dockerfile").read_text()
    patterns = lang_plugins.get_plugin(language).error_patterns
    assert headline(tracker.failures[0], patterns, dockerfile).text == expected


def test_without_a_matching_line_buildkit_error_stands() -> None:
    failure = tracked(GO_ERROR).failures[0]
    lifted = headline(failure, (), GO_DOCKERFILE)
    assert lifted.line is None
    assert lifted.text.startswith('linux/arm64, step 6/8 (go build): process "/bin/sh -c')
    assert lifted.text.endswith("did not complete successfully: exit code: 2")


def test_stage_order_puts_the_steps_in_dockerfile_order() -> None:
    # BuildKit listed the runtime stage first; without the Dockerfile the count is per stage.
    failure = tracked(GO_ERROR).failures[0]
    assert stage_order(GO_DOCKERFILE) == ["build", "stage-1"]
    assert headline(failure, (), "").step == "8/8"


@pytest.mark.parametrize(
    ("language", "output", "expected"),
    [
        (
            "java",
            [
                "[INFO] Compiling 1 source file",
                "[ERROR] COMPILATION ERROR :",
                "[ERROR] /src/src/main/java/App.java:[3,9] cannot find symbol",
            ],
            "[ERROR] /src/src/main/java/App.java:[3,9] cannot find symbol",
        ),
        ("java", ["Note: x", "App.java:3: error: ';' expected"], "App.java:3: error: ';' expected"),
        (
            "python",
            [
                "Looking in indexes: http://127.0.0.1:3141/simple/",
                "ERROR: Could not find a version that satisfies the requirement nosuchpkg",
                "ERROR: No matching distribution found for nosuchpkg",
            ],
            "ERROR: Could not find a version that satisfies the requirement nosuchpkg",
        ),
        (
            "python",
            ["Traceback (most recent call last):", '  File "x.py"', "NameError: name 'y'"],
            "NameError: name 'y'",
        ),
        (
            "static",
            ["> build", "npm ERR! Missing script: build", "npm ERR! A complete log"],
            "npm ERR! Missing script: build",
        ),
        ("static", ["npm error code E404", "npm error 404 Not Found"], "npm error code E404"),
        # Generic shapes, whatever the plugin: a C compiler, rustc.
        ("go", ["gcc ...", "main.c:3:5: error: expected ';'"], "main.c:3:5: error: expected ';'"),
        (
            "go",
            ["   Compiling x", "error[E0425]: cannot find value"],
            "error[E0425]: cannot find value",
        ),
        ("go", ["just some output", "exit 1"], None),
    ],
)
def test_plugin_error_lines(language: str, output: list[str], expected: str | None) -> None:
    assert error_line(output, lang_plugins.get_plugin(language).error_patterns) == expected


def test_short_command() -> None:
    assert short_command("[build 4/6] RUN --mount=type=cache,target=/x go mod download") == (
        "go mod download"
    )
    assert short_command("[linux/arm64 build 2/3] RUN CGO_ENABLED=0 GOOS=linux go build -o x") == (
        "go build"
    )
    assert short_command("[build 4/5] RUN --mount=type=cache <<'EOF' (set -eu...)") == "RUN script"
    assert short_command("[stage-1 2/2] COPY --from=build /out/app /usr/local/bin/app") == (
        "COPY --from=build /out/app"
    )


def test_failed_build_reason_is_the_headline(queued_build: Build) -> None:
    """The API's reason, the failed platform's step and the log line the page opens at."""
    work_once("w1", FakeBackend(stream=GO_ERROR.read_bytes(), exit_code=1))
    build = Build.objects.get(pk=queued_build.pk)
    assert build.state == Build.State.FAILED and build.fault == Build.Fault.USER
    assert build.reason == HEADLINE
    assert build.to_api()["reason"] == HEADLINE
    line = build.log_lines.get(seq=build.reason_line)
    assert line.text.endswith("./main.go:4:2: undefined: nosuchfunc")
    assert line.platform == "linux/arm64"
    rows = {p.platform: p for p in build.platform_states.all()}
    assert rows["linux/arm64"].state == BuildPlatform.State.FAILED
    assert rows["linux/arm64"].failed_step == "6/8"
    assert rows["linux/arm64"].reason.endswith(": ./main.go:4:2: undefined: nosuchfunc")
    for other in ("linux/amd64", "linux/arm/v7"):
        assert rows[other].state == BuildPlatform.State.CANCELLED
        assert rows[other].reason == "stopped when linux/arm64 failed"
        assert rows[other].failed_step == ""
