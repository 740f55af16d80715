"""PORTAL_LOG_FORMAT=json: a real portal process logs one JSON object a line, and the lines
logged while the worker runs a build name the build, its project and team."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging
import django
django.setup()
from portal.logcontext import about_build
log = logging.getLogger("builds.pipeline")
log.warning("outside")
with about_build(42, "hello", "alpha"):
    log.warning("pushed %s", "sha256:abc")
"""


def _run(fmt: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PORTAL_LOG_FORMAT": fmt, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_json_lines_carry_the_build() -> None:
    done = _run("json")
    assert done.returncode == 0, done.stderr
    outside, inside = (json.loads(line) for line in done.stderr.strip().splitlines())
    assert outside["message"] == "outside" and outside["build_id"] is None
    assert inside["message"] == "pushed sha256:abc"
    assert (inside["build_id"], inside["project"], inside["team"]) == (42, "hello", "alpha")
    assert inside["level"] == "WARNING" and inside["logger"] == "builds.pipeline"
    assert "time" in inside


def test_plain_is_the_default_and_a_wrong_format_stops_the_start() -> None:
    done = _run("plain")
    assert done.returncode == 0 and "WARNING builds.pipeline: pushed sha256:abc" in done.stderr
    done = _run("xml")
    assert done.returncode != 0 and "PORTAL_LOG_FORMAT: plain or json" in done.stderr
