"""`crossport build --wait` on the real stack: a good build streams its log and ends with the
pushed digest the registry holds (exit 0); a broken one ends with the compiler's error (exit 1).

Runs in the scale-out configuration only: the command talks to the HTTP API alone, so the
embedded run would build the same two images again and test nothing new."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stack import BROKEN_LINE, go_project, registry_index

CROSSPORT = Path(sys.executable).with_name("crossport")


@pytest.fixture
def crossport(portal: Any, persona: Any) -> Any:
    if not portal.scale_out:
        pytest.skip("scale-out configuration only (the CLI is an API client)")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CROSSPORT_URL": portal.url, "CROSSPORT_TOKEN": persona.token}
        return subprocess.run(
            [str(CROSSPORT), *args], env=env, capture_output=True, text=True, timeout=900
        )

    return run


def test_a_good_build_exits_0_with_the_digest_the_registry_holds(
    crossport: Any, portal: Any, persona: Any, hello_repo: str
) -> None:
    project_id, image = go_project(portal, persona, hello_repo, "cli-ok")
    done = crossport("build", str(project_id), "--tag", "cli", "--wait")
    assert done.returncode == 0, done.stderr
    digest = registry_index(image, "cli")[0]
    assert f"docker pull {image}@{digest}" in done.stdout.splitlines()
    # The log came through, per platform, before the outcome.
    for platform in ("linux/amd64", "linux/arm64", "linux/arm/v7"):
        assert f"[{platform}] " in done.stdout, platform
    assert done.stdout.rstrip().endswith(f"docker pull {image}@{digest}")
    build_id = done.stderr.split("crossport: build ", 1)[1].split(" ", 1)[0]
    status = crossport("status", build_id)
    assert status.returncode == 0 and f"docker pull {image}@{digest}" in status.stdout


def test_a_broken_build_exits_1_with_the_compiler_error(
    crossport: Any, portal: Any, persona: Any, broken_repo: str
) -> None:
    project_id, _ = go_project(portal, persona, broken_repo, "cli-broken")
    done = crossport("build", str(project_id), "--wait")
    assert done.returncode == 1, done.stderr
    assert BROKEN_LINE in done.stdout  # the log
    outcome = done.stderr.strip().splitlines()[-1]
    assert " failed: " in outcome and BROKEN_LINE in outcome, outcome
