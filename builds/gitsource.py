"""The choke point for git: fetch one ref of a repository into a workspace.

URLs and refs were validated by `builds.refs` when they were saved; here they are still passed
only as separate argv values after `--`, with transports other than https, ssh and file refused
by git itself (GIT_ALLOW_PROTOCOL), no prompts and no hooks.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from django.conf import settings

SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")


class SourceError(Exception):
    """The repository or ref could not be fetched (the project's fault, shown to the user)."""


def _git_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "https:ssh:file",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_SSH_COMMAND": "ssh -oBatchMode=yes -oStrictHostKeyChecking=accept-new",
        "LC_ALL": "C",
    }


def _git(*args: str, cwd: Path | None = None, timeout: int = 600) -> str:
    cmd = [
        settings.PORTAL_GIT_CLI,
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "protocol.ext.allow=never",
        *args,
    ]
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=_git_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"git {args[0]} timed out after {timeout}s") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise SourceError(f"git {args[0]} failed: {detail[-1] if detail else proc.returncode}")
    return proc.stdout


def fetch(url: str, ref: str, dest: Path) -> str:
    """Check out `ref` (branch, tag or commit) of `url` into `dest`; return the commit SHA."""
    dest.mkdir(parents=True, exist_ok=True)
    _git("init", "--quiet", "--", str(dest))
    try:
        # A shallow fetch is enough for branches, tags and (on servers that allow it) SHAs.
        _git("fetch", "--quiet", "--depth=1", "--no-tags", "--", url, ref, cwd=dest)
    except SourceError:
        if not SHA_RE.match(ref):
            raise
        # Abbreviated or unadvertised commits need the full history to resolve.
        _git(
            "fetch",
            "--quiet",
            "--no-tags",
            "--",
            url,
            "+refs/heads/*:refs/remotes/origin/*",
            cwd=dest,
        )
        _git("checkout", "--quiet", "--detach", ref, "--", cwd=dest)
    else:
        _git("checkout", "--quiet", "--detach", "FETCH_HEAD", cwd=dest)
    return _git("rev-parse", "HEAD", cwd=dest).strip()
