"""The choke point for git: fetch one ref of a repository into a workspace.

URLs and refs were validated by `builds.refs` when they were saved; here they are still passed
only as separate argv values after `--`, with transports other than https, ssh and file refused
by git itself (GIT_ALLOW_PROTOCOL), no prompts, no hooks and none of the portal's own git
configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings

from builds.proc import ProcessTimeout, run

SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
# git's record of what a fetch got: "<sha>\t\ttag 'v1.2.3' of <url>" (or "branch 'main' of").
_FETCHED_TAG = re.compile(r"^[0-9a-f]+\t[^\t]*\ttag '([^']+)' of ", re.MULTILINE)
Tick = Callable[[], bool] | None


class SourceError(Exception):
    """The repository or ref could not be fetched (the project's fault, shown to the user)."""


def _git_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "https:ssh:file",
        "GIT_CONFIG_NOSYSTEM": "1",
        # The portal's own git configuration (credential helpers, URL rewrites) is not lent
        # to every team's build.
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_SSH_COMMAND": "ssh -oBatchMode=yes -oStrictHostKeyChecking=accept-new",
        "LC_ALL": "C",
    }


def _git(*args: str, cwd: Path | None = None, tick: Tick = None, timeout: int = 600) -> str:
    cmd = [settings.PORTAL_GIT_CLI, "-c", "core.hooksPath=/dev/null", *args]
    try:
        proc = run(cmd, cwd=cwd, env=_git_env(), timeout=timeout, tick=tick)
    except ProcessTimeout as exc:
        raise SourceError(f"git {args[0]}: {exc}") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise SourceError(f"git {args[0]} failed: {detail[-1] if detail else proc.returncode}")
    return proc.stdout.decode(errors="replace")


def check_file_url(url: str) -> None:
    """file:// reads the portal host's disk: only below PORTAL_GIT_FILE_ROOTS (none by default),
    so one team cannot clone the portal's own or another team's repositories."""
    if not url.lower().startswith("file://"):
        return
    path = Path(unquote(urlsplit(url).path)).resolve()
    roots = [Path(root).resolve() for root in settings.PORTAL_GIT_FILE_ROOTS]
    if not any(path == root or root in path.parents for root in roots):
        where = ", ".join(map(str, roots)) if roots else "none configured"
        raise SourceError(
            f"file:// repositories are allowed only below PORTAL_GIT_FILE_ROOTS ({where})"
        )


def fetch(url: str, ref: str, dest: Path, tick: Tick = None) -> str:
    """Check out `ref` (branch, tag or commit) of `url` into `dest`; return the commit SHA.
    Raises SourceError, or proc.ProcessStopped when `tick` asks to stop."""
    check_file_url(url)
    dest.mkdir(parents=True, exist_ok=True)
    _git("init", "--quiet", "--", str(dest))
    try:
        # A shallow fetch is enough for branches, tags and (on servers that allow it) SHAs.
        _git("fetch", "--quiet", "--depth=1", "--no-tags", "--", url, ref, cwd=dest, tick=tick)
    except SourceError:
        if not SHA_RE.match(ref):
            raise
        # Abbreviated or unadvertised commits need the full history to resolve.
        everything = "+refs/heads/*:refs/remotes/origin/*"
        _git("fetch", "--quiet", "--no-tags", "--", url, everything, cwd=dest, tick=tick)
        _git("checkout", "--quiet", "--detach", ref, "--", cwd=dest)
    else:
        _git("checkout", "--quiet", "--detach", "FETCH_HEAD", cwd=dest)
    return _git("rev-parse", "HEAD", cwd=dest).strip()


def fetched_tag(dest: Path) -> str | None:
    """The git tag a `fetch` into `dest` checked out, or None for a branch or a commit: a
    branch that happens to be called v1.2.3 is not a release."""
    try:
        record = (dest / ".git" / "FETCH_HEAD").read_text(errors="replace")
    except OSError:
        return None
    match = _FETCHED_TAG.match(record)
    return match.group(1) if match else None
