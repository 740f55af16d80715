"""`crossport` (crossport_cli), the installed console script, against a real portal process with
no worker: the test plays the worker (writes log lines, ends the build) while the command waits.
The success path with a pushed digest runs on the real stack in tests/e2e/test_cli.py."""

from __future__ import annotations

import http.server
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from builds.models import Build, LogLine
from crossport_cli.main import Portal, Problem
from portal.models import ApiToken, Project

pytestmark = pytest.mark.django_db(transaction=True)  # the server process reads what we write

CROSSPORT = Path(sys.executable).with_name("crossport")


@pytest.fixture
def token(alice: Any, local_node: Any) -> str:
    """alice's token; the local node exists before the server starts (which would make it)."""
    return ApiToken.issue(alice, "cli")[1]


def crossport(portal_url: str, token: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "CROSSPORT_URL": portal_url, "CROSSPORT_TOKEN": token}
    return subprocess.Popen(
        [str(CROSSPORT), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def run(portal_url: str, token: str, *args: str) -> tuple[int, str, str]:
    proc = crossport(portal_url, token, *args)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def queued(timeout: float = 30) -> Build:
    """The build the command queued (the test's worker waits for it)."""
    deadline = time.monotonic() + timeout
    while (build := Build.objects.order_by("-pk").first()) is None:
        assert time.monotonic() < deadline, "the command queued no build"
        time.sleep(0.1)
    return build


def test_the_console_script_is_installed() -> None:
    done = subprocess.run([str(CROSSPORT), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "build" in done.stdout and "CROSSPORT_TOKEN" in done.stdout


def test_build_wait_streams_the_log_and_a_failure_exits_1_with_its_reason(
    token: str, project: Project, portal_url: str
) -> None:
    proc = crossport(portal_url, token, "build", "alpha/hello", "--tag", "v1", "--wait")
    printed: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [printed.put(line) for line in proc.stdout or ()])
    reader.start()
    build = queued()
    assert build.project == project and build.tags == ["v1"]
    Build.objects.filter(pk=build.pk).update(state="running", started_at=timezone.now())
    lines = [("", "fetching"), ("linux/arm64", "#5 go build"), ("linux/arm64", "undefined: x")]
    for seq, (platform, text) in enumerate(lines, 1):
        LogLine.objects.create(build=build, seq=seq, platform=platform, text=text)
        # Each line is printed while the build still runs, not at the end.
        shown = printed.get(timeout=30).rstrip("\n")
        assert shown == (f"[{platform}] {text}" if platform else text)
    reason = "linux/arm64, step 5/8 (go build): ./main.go:4:2: undefined: x"
    Build.objects.filter(pk=build.pk).update(
        state="failed", reason=reason, finished_at=timezone.now()
    )
    assert proc.wait(timeout=60) == 1
    reader.join(timeout=10)
    assert printed.empty()
    err = proc.stderr.read() if proc.stderr else ""
    assert f"build {build.pk}: running" in err
    assert f"build {build.pk} failed: {reason}" in err


def test_ctrl_c_cancels_the_build_it_waits_for_and_exits_130(
    token: str, project: Project, portal_url: str
) -> None:
    # As in a terminal: a shell that starts jobs in the background (CI scripts, nohup) has
    # SIGINT ignored, and a child would inherit that.
    proc = crossport(
        portal_url,
        token,
        "build",
        str(project.pk),
        "--wait",
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    build = queued()
    time.sleep(1)  # it is polling now
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"cancelling build {build.pk}" in err
    assert Build.objects.get(pk=build.pk).state == "cancelled"


def test_without_wait_it_prints_the_build_id_and_leaves_it_queued(
    token: str, project: Project, portal_url: str
) -> None:
    code, out, err = run(portal_url, token, "build", "hello")
    build = Build.objects.get()
    assert code == 0 and out.strip() == str(build.pk)
    assert f"{portal_url}/builds/{build.pk}/" in err
    assert build.state == "queued" and build.ref == project.ref


def test_projects_status_and_cancel(token: str, queued_build: Build, portal_url: str) -> None:
    code, out, _ = run(portal_url, token, "projects")
    assert code == 0
    assert "alpha/hello  localhost:5000/alpha/hello  linux/amd64,linux/arm64,linux/arm/v7" in out
    code, out, _ = run(portal_url, token, "status", str(queued_build.pk))
    assert code == 0 and out.startswith(f"build {queued_build.pk}: queued")
    assert "  linux/arm/v7: pending" in out
    code, out, _ = run(portal_url, token, "status", str(queued_build.pk), "--json")
    assert code == 0 and json.loads(out)["id"] == queued_build.pk
    code, _, err = run(portal_url, token, "cancel", str(queued_build.pk))
    assert code == 0 and "cancelled" in err
    code, _, err = run(portal_url, token, "status", str(queued_build.pk))
    assert code == 1 and f"build {queued_build.pk} cancelled" in err


def test_usage_token_and_permission_problems_exit_2_and_change_nothing(
    token: str, queued_build: Build, charlie: Any, portal_url: str
) -> None:
    outsider = ApiToken.issue(charlie, "cli")[1]
    cases = [
        ((), {}, "usage"),
        (("build",), {}, "the following arguments are required"),
        (("status", "0"), {}, "not a build id"),
        (("status", "1; rm -rf /"), {}, "not a build id"),
        (("--token", token, "projects"), {}, "not taken on the command line"),
        ((f"--token={token}", "projects"), {}, "not taken on the command line"),
        (("projects",), {"CROSSPORT_URL": ""}, "set CROSSPORT_URL"),
        (("projects",), {"CROSSPORT_URL": "file:///etc/passwd"}, "must be an http(s) address"),
        (("projects",), {"CROSSPORT_TOKEN": ""}, "no token"),
        (("projects",), {"CROSSPORT_TOKEN": "cpt_wrong"}, "refused the token"),
        (("build", "nosuch"), {}, "no project 'nosuch'"),
        (("build", "alpha/hello", "--tag", "bad tag!"), {}, "tag"),
        (("status", str(queued_build.pk)), {"CROSSPORT_TOKEN": outsider}, "not found"),
        (("cancel", str(queued_build.pk)), {"CROSSPORT_TOKEN": outsider}, "not found"),
    ]
    for args, env, says in cases:
        done = subprocess.run(
            [str(CROSSPORT), *args],
            env={**os.environ, "CROSSPORT_URL": portal_url, "CROSSPORT_TOKEN": token, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr, (args, done.stderr)
        assert token not in done.stderr + done.stdout
    assert list(Build.objects.values_list("pk", "state")) == [(queued_build.pk, "queued")]


def test_a_token_file_works_and_an_unreadable_one_is_a_usage_error(
    token: str, project: Project, tmp_path: Path, portal_url: str
) -> None:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    env = {**os.environ, "CROSSPORT_URL": portal_url}
    env.pop("CROSSPORT_TOKEN", None)
    done = subprocess.run(
        [str(CROSSPORT), "--token-file", str(path), "projects"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "alpha/hello" in done.stdout
    done = subprocess.run(
        [str(CROSSPORT), "--token-file", str(tmp_path / "missing"), "projects"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "cannot read the token file" in done.stderr


# retries: a portal that restarts or is briefly overloaded does not fail a CI job --------------


@pytest.fixture
def flaky() -> Iterator[tuple[str, list[int]]]:
    """A local HTTP server answering the statuses in `plan` in turn, then 200 {"ok": true}."""
    plan: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = plan.pop(0) if plan else 200
            body = b'{"ok": true}' if code == 200 else b'{"error": "busy"}'
            self.send_response(code)
            if code == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", plan
    server.shutdown()
    server.server_close()


def test_transient_answers_are_retried_with_backoff(flaky: tuple[str, list[int]]) -> None:
    url, plan = flaky
    plan.extend([503, 502, 429, 504])
    waits: list[float] = []
    assert Portal(url, "t", sleep=waits.append).call("GET", "/x") == {"ok": True}
    assert waits == [0.5, 1.0, 1.0, 4.0]  # doubling, but Retry-After wins when given
    plan.extend([500])
    with pytest.raises(Problem, match="answered 500 on /x: busy"):
        Portal(url, "t", sleep=waits.append).call("GET", "/x")
    plan.extend([503] * 3)
    with pytest.raises(Problem, match="answered 503"):
        Portal(url, "t", patience=0, sleep=waits.append).call("GET", "/x")


def test_an_unreachable_portal_is_retried_then_a_usage_error(flaky: tuple[str, list[int]]) -> None:
    url, _ = flaky
    dead = url.rsplit(":", 1)[0] + ":1"
    waits: list[float] = []
    with pytest.raises(Problem, match="cannot reach the portal"):
        Portal(dead, "t", patience=0, sleep=waits.append).call("GET", "/x")
    assert waits == []
