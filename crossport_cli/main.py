"""The `crossport` command: queue a build and wait for it from a CI job, list projects, look at
or cancel a build. It talks to the portal's API (`/api/v1/`) with a personal access token.

    CROSSPORT_URL=https://crossport.example  CROSSPORT_TOKEN=cpt_...  crossport build web --wait

Exit codes: 0 done (a waited-for build succeeded), 1 the build failed or was cancelled (its
reason on stderr), 2 a usage, token, permission or connection problem, 130 interrupted (Ctrl-C
cancels the build being waited for first).

The token comes from CROSSPORT_TOKEN or `--token-file`, never from a flag: a command line is
readable by every user of the machine (`ps`). While waiting, the log is read from the log
endpoint (`?after=<seq>`), which resumes exactly where it stopped after a dropped connection and
passes every proxy; a portal that restarts or answers 502/503/504/429 is retried for a while.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130
FINISHED = ("succeeded", "failed", "cancelled")
TRANSIENT = (429, 502, 503, 504)


class Problem(Exception):
    """Something the user must fix (exit 2): usage, token, permissions, an unreachable portal."""


class Portal:
    """The portal's API with one token. Transient failures (connection refused or reset, 429,
    502-504) are retried with backoff for up to `patience` seconds; the rest raise Problem."""

    def __init__(
        self,
        url: str,
        token: str,
        patience: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
            raise Problem(f"CROSSPORT_URL must be an http(s) address, not {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.patience = patience
        self.sleep = sleep

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        deadline = time.monotonic() + self.patience
        delay = 0.5
        while True:
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as exc:
                if exc.code not in TRANSIENT or time.monotonic() > deadline:
                    raise Problem(_explain(exc, path)) from None
                wait = _retry_after(exc) or delay
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    reason = getattr(exc, "reason", exc)
                    raise Problem(f"cannot reach the portal at {self.url}: {reason}") from None
                wait = delay
            self.sleep(min(wait, 10.0))
            delay = min(delay * 2, 5.0)


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After", "") if exc.headers else ""
    return float(value) if value.isdigit() else None


def _explain(exc: urllib.error.HTTPError, path: str) -> str:
    try:
        detail = json.loads(exc.read()).get("error", "")
    except (ValueError, AttributeError, OSError):
        detail = ""
    if exc.code == 401:
        return "the portal refused the token (CROSSPORT_TOKEN): unknown, expired or revoked"
    if exc.code == 403:
        return f"the token may not do this: {detail or path}"
    if exc.code == 404:
        return f"not found, or not one of your teams': {path}"
    return f"the portal answered {exc.code} on {path}" + (f": {detail}" if detail else "")


# commands -----------------------------------------------------------------------------------


def find_project(portal: Portal, name: str) -> dict[str, Any]:
    """A project by id, `team/name` or a name that only one of your teams uses."""
    if name.isdigit():
        return dict(portal.call("GET", f"/api/v1/projects/{int(name)}"))
    team, _, short = name.rpartition("/")
    found = [
        p
        for p in portal.call("GET", "/api/v1/projects")["projects"]
        if p["name"] == short and team in ("", p["team"])
    ]
    if not found:
        raise Problem(f"no project {name!r} in your teams (crossport projects lists them)")
    if len(found) > 1:
        teams = ", ".join(f"{p['team']}/{p['name']}" for p in found)
        raise Problem(f"{name!r} is in several teams: say which ({teams})")
    return dict(found[0])


def cmd_projects(portal: Portal, args: argparse.Namespace) -> int:
    projects = portal.call("GET", "/api/v1/projects")["projects"]
    if args.json:
        print(json.dumps(projects, indent=2))
        return OK
    for p in projects:
        print(f"{p['id']:>6}  {p['team']}/{p['name']}  {p['image']}  {','.join(p['platforms'])}")
    return OK


def cmd_build(portal: Portal, args: argparse.Namespace) -> int:
    project = find_project(portal, args.project)
    body: dict[str, Any] = {}
    if args.ref:
        body["ref"] = args.ref
    if args.tag:
        body["tags"] = args.tag
    if args.strategy:
        body["strategy"] = args.strategy
    build = portal.call("POST", f"/api/v1/projects/{project['id']}/builds", body)
    say(f"build {build['id']} of {project['team']}/{project['name']} queued: {build.get('url')}")
    if not args.wait:
        print(build["id"])
        return OK
    return follow(portal, build["id"], project)


def cmd_status(portal: Portal, args: argparse.Namespace) -> int:
    build = portal.call("GET", f"/api/v1/builds/{args.build}")
    if args.json:
        print(json.dumps(build, indent=2))
    else:
        project = portal.call("GET", f"/api/v1/projects/{build['project']}")
        print(f"build {build['id']}: {build['state']}")
        for platform, state in build["platforms"].items():
            print(f"  {platform}: {state['state']}")
        report(build, project)
    return FAILED if build["state"] in ("failed", "cancelled") else OK


def cmd_cancel(portal: Portal, args: argparse.Namespace) -> int:
    build = portal.call("POST", f"/api/v1/builds/{args.build}/cancel")
    say(f"build {build['id']}: {build['state']}")
    return OK


def follow(portal: Portal, build_id: int, project: dict[str, Any], poll: float = 1.0) -> int:
    """Print the build's log as it comes; on Ctrl-C cancel the build. The exit code says how
    it ended."""
    after = 0
    state = ""
    try:
        while True:
            log = portal.call("GET", f"/api/v1/builds/{build_id}/log?after={after}")
            for line in log["lines"]:
                prefix = f"[{line['platform']}] " if line.get("platform") else ""
                sys.stdout.write(f"{prefix}{line['text']}\n")
            sys.stdout.flush()
            after = log["next"]
            if log["state"] != state:
                state = log["state"]
                say(f"build {build_id}: {state}")
            if log["more"]:
                continue
            if state in FINISHED:
                break
            portal.sleep(poll)
    except KeyboardInterrupt:
        say(f"interrupted: cancelling build {build_id}")
        try:
            portal.patience = 10.0
            portal.call("POST", f"/api/v1/builds/{build_id}/cancel")
        except (Problem, KeyboardInterrupt) as exc:
            say(f"could not cancel build {build_id}: {exc}")
        return INTERRUPTED
    build = portal.call("GET", f"/api/v1/builds/{build_id}")
    report(build, project)
    return OK if build["state"] == "succeeded" else FAILED


def report(build: dict[str, Any], project: dict[str, Any]) -> None:
    """A finished build's outcome: the digest and pull line, or why it did not push."""
    if build["state"] == "succeeded" and build.get("manifest"):
        digest = build["manifest"]["digest"]
        print(f"pushed {project['image']}:{','.join(build['tags'])} {digest}")
        print(f"docker pull {project['image']}@{digest}")
    elif build["state"] in ("failed", "cancelled"):
        say(f"build {build['id']} {build['state']}: {build.get('reason') or 'no reason given'}")


def say(message: str) -> None:
    print(f"crossport: {message}", file=sys.stderr, flush=True)


# command line -------------------------------------------------------------------------------


def positive(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 10**18:
        raise argparse.ArgumentTypeError(f"not a build id: {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    # No abbreviations: `--token` must not quietly mean `--token-file`.
    top = argparse.ArgumentParser(
        prog="crossport",
        allow_abbrev=False,
        description="Build multi-architecture images with a Crossport portal.",
        epilog="Environment: CROSSPORT_URL (the portal), CROSSPORT_TOKEN (a personal access "
        "token from the portal's Tokens page). Exit codes: 0 ok, 1 build failed or "
        "cancelled, 2 usage/token/connection problem, 130 interrupted.",
    )
    top.add_argument("--url", help="the portal's address (default: $CROSSPORT_URL)")
    top.add_argument("--token-file", type=Path, help="read the token from this file")
    # Refused with a reason rather than argparse's echo of the value: a token on a command
    # line is readable by every user of the machine and lands in CI logs.
    top.add_argument("--token", help=argparse.SUPPRESS)
    commands = top.add_subparsers(dest="command", required=True)

    projects = commands.add_parser("projects", allow_abbrev=False, help="list your teams' projects")
    projects.add_argument("--json", action="store_true", help="the API's JSON")
    projects.set_defaults(run=cmd_projects)

    build = commands.add_parser("build", allow_abbrev=False, help="queue a build of a project")
    build.add_argument("project", help="project id, team/name, or a name only one team uses")
    build.add_argument("--ref", help="branch, tag or commit (default: the project's ref)")
    build.add_argument("--tag", action="append", help="image tag (repeat for several)")
    build.add_argument("--strategy", help="emulate, native or auto (default: the project's)")
    build.add_argument(
        "--wait", action="store_true", help="stream the log and exit with the build's outcome"
    )
    build.set_defaults(run=cmd_build)

    status = commands.add_parser(
        "status", allow_abbrev=False, help="a build's state, digest or failure reason"
    )
    status.add_argument("build", type=positive)
    status.add_argument("--json", action="store_true", help="the API's JSON")
    status.set_defaults(run=cmd_status)

    cancel = commands.add_parser(
        "cancel", allow_abbrev=False, help="cancel a queued or running build"
    )
    cancel.add_argument("build", type=positive)
    cancel.set_defaults(run=cmd_cancel)
    return top


def connect(args: argparse.Namespace, environ: dict[str, str]) -> Portal:
    if args.token is not None:
        raise Problem(
            "a token is not taken on the command line (other users and CI logs can read it): "
            "set CROSSPORT_TOKEN or pass --token-file"
        )
    url = args.url or environ.get("CROSSPORT_URL", "")
    if not url:
        raise Problem("say which portal: set CROSSPORT_URL or pass --url")
    if args.token_file:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise Problem(f"cannot read the token file: {exc.strerror}") from None
    else:
        token = environ.get("CROSSPORT_TOKEN", "").strip()
    if not token:
        raise Problem("no token: set CROSSPORT_TOKEN or pass --token-file")
    return Portal(url, token)


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> NoReturn:
    args = parser().parse_args(argv)  # exits 2 on bad usage
    try:
        portal = connect(args, dict(os.environ if environ is None else environ))
        code = args.run(portal, args)
    except Problem as exc:
        say(str(exc))
        code = USAGE
    except KeyboardInterrupt:
        code = INTERRUPTED
    sys.exit(code)


if __name__ == "__main__":
    main()
