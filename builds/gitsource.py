"""The choke point for git: fetch one ref of a repository into a workspace.

URLs and refs were validated by `portal.grammar` when they were saved; here they are still passed
only as separate argv values after `--`, with transports other than https, ssh and file refused
by git itself (GIT_ALLOW_PROTOCOL), no prompts, no hooks and none of the portal's own git
configuration. The host goes through the outbound guard first, and git connects to the address
the guard checked: curl's resolve table for https (redirects off, so no second host), ssh's
HostName for ssh. Each fetch uses only what its `GitAccess` gives (builds/gitauth.py: the
project's deploy key and token, the team's pinned host keys), never the portal user's ~/.ssh,
agent or credential helpers. Errors name what went wrong in the project's terms and what to do
(add the deploy key, set a token; a changed host key with both fingerprints), never the raw
transport text (which tells open ports from closed ones); the raw text goes to the portal's log.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from builds import gitauth
from builds.gitauth import GitAccess
from builds.proc import ProcessTimeout, run
from portal import gitaccess, outbound

logger = logging.getLogger(__name__)

SHA_RE = re.compile(r"^[0-9a-f]{7,40}$")
# git's record of what a fetch got: "<sha>\t\ttag 'v1.2.3' of <url>" (or "branch 'main' of").
_FETCHED_TAG = re.compile(r"^[0-9a-f]+\t[^\t]*\ttag '([^']+)' of ", re.MULTILINE)
Tick = Callable[[], bool] | None
# What git printed, mapped to what the project page says (first match wins).
_FAILURES = [
    (re.compile(r"host key verification failed|remote host identification", re.I), "trust"),
    (
        re.compile(
            r"couldn't find remote ref|not our ref|unadvertised object|did not match|"
            r"unknown revision",
            re.I,
        ),
        "ref",
    ),
    (
        re.compile(
            r"not found|authentication failed|could not read (username|password)|"
            r"permission denied|returned error: 40[134]|access denied|does not appear to be",
            re.I,
        ),
        "access",
    ),
    (re.compile(r"certificate|ssl|tls|gnutls|host key verification", re.I), "trust"),
]
_MESSAGES = {
    "ref": "the repository has no branch, tag or commit {ref}",
    "access": "the repository was not found, or the portal may not read it",
    "trust": "the git server's identity could not be verified (TLS certificate or host key)",
    None: "the git server could not be reached, or did not answer as a git server",
}


class SourceError(Exception):
    """The repository or ref could not be fetched (the project's fault, shown to the user).
    `kind` is the _FAILURES kind of a failed git command."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


def destination(url: str) -> outbound.Destination | None:
    """The checked address to fetch an https:// or ssh:// URL from (None for file://).
    Raises outbound.Refused."""
    address = outbound.git_address(url)
    if address is None:
        return None
    return outbound.resolve(*address, kind="git URL", shown=url)


def _pinning(url: str, where: outbound.Destination | None) -> tuple[list[str], list[str]]:
    """git -c options and ssh options that make git connect to the checked address."""
    if where is None:
        return [], []
    if urlsplit(url).scheme.lower() == "ssh":
        alias = gitauth.host_alias(where.host, where.port)
        return [], [f"-oHostName={where.address}", f"-oHostKeyAlias={alias}"]
    config = ["-c", "http.followRedirects=false"]
    if where.address != where.host:  # a name, not a literal address
        address = f"[{where.address}]" if ":" in where.address else where.address
        config += ["-c", f"http.curloptResolve={where.host}:{where.port}:{address}"]
    return config, []


def _git_env(ssh_options: list[str], extra: dict[str, str]) -> dict[str, str]:
    """git's whole environment: nothing of the portal's (no SSH_AUTH_SOCK, HOME from the
    fetch's session, see builds/gitauth.py)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "https:ssh:file",
        "GIT_CONFIG_NOSYSTEM": "1",
        # The portal's own git configuration (credential helpers, URL rewrites) is not lent
        # to every team's build.
        "GIT_CONFIG_GLOBAL": "/dev/null",
        # git runs this through a shell: every word is quoted (the address comes from the
        # resolver, the host passed the URL grammar).
        "GIT_SSH_COMMAND": shlex.join(["ssh", *ssh_options]),
        "LC_ALL": "C",
        **extra,
    }


def _git(
    *args: str,
    cwd: Path | None = None,
    tick: Tick = None,
    timeout: int = 600,
    config: list[str] | None = None,
    ssh_options: list[str] | None = None,
    ref: str = "",
    env: dict[str, str] | None = None,
) -> str:
    cmd = [settings.PORTAL_GIT_CLI, "-c", "core.hooksPath=/dev/null", *(config or []), *args]
    try:
        proc = run(
            cmd,
            cwd=cwd,
            env=_git_env(ssh_options or [], env or {}),
            timeout=timeout,
            tick=tick,
            # The checkout's modes become the image's (COPY keeps them): the usual 0644/0755,
            # not the portal's private 0600/0700. The workspace around it is private.
            umask=0o022,
        )
    except ProcessTimeout as exc:
        raise SourceError(f"git {args[0]}: {exc}") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        logger.info("git %s failed (exit %s): %s", args[0], proc.returncode, detail[-2000:])
        kind = next((kind for pattern, kind in _FAILURES if pattern.search(detail)), None)
        raise SourceError(f"git {args[0]} failed: " + _MESSAGES[kind].format(ref=ref), kind)
    return proc.stdout.decode(errors="replace")


def check_file_url(url: str) -> None:
    problem = outbound.file_url_problem(url)
    if problem:
        raise SourceError(problem)


def fetch(
    url: str, ref: str, dest: Path, tick: Tick = None, access: GitAccess | None = None
) -> str:
    """Check out `ref` (branch, tag or commit) of `url` into `dest`; return the commit SHA.
    `access` is what the fetch may use (the project's deploy key, token, pinned host keys);
    nothing else of the portal's is. Raises SourceError, outbound.Refused (an InvalidValue)
    for a destination the guard refuses, or proc.ProcessStopped when `tick` asks to stop."""
    check_file_url(url)
    where = destination(url)
    config, ssh_options = _pinning(url, where)
    scheme = urlsplit(url).scheme.lower()
    host, port = (where.host, where.port) if where else ("", 0)
    dest.mkdir(parents=True, exist_ok=True)
    with gitauth.session(scheme, host, port, access, dest.parent) as auth:
        local = functools.partial(_git, env=auth.env)
        remote = functools.partial(
            local,
            config=[*auth.config, *config],
            ssh_options=[*auth.ssh_options, *ssh_options],
            tick=tick,
            ref=ref,
        )
        try:
            commit = _checkout(url, ref, dest, local, remote)
        except SourceError as exc:
            raise _explained(exc, scheme, host, port, access, auth, ssh_options) from None
        auth.succeeded()
    return commit


def _checkout(
    url: str, ref: str, dest: Path, local: Callable[..., str], remote: Callable[..., str]
) -> str:
    local("init", "--quiet", "--", str(dest))
    try:
        # A shallow fetch is enough for branches, tags and (on servers that allow it) SHAs.
        remote("fetch", "--quiet", "--depth=1", "--no-tags", "--", url, ref, cwd=dest)
    except SourceError:
        if not SHA_RE.match(ref):
            raise
        # Abbreviated or unadvertised commits need the full history to resolve.
        everything = "+refs/heads/*:refs/remotes/origin/*"
        remote("fetch", "--quiet", "--no-tags", "--", url, everything, cwd=dest)
        local("checkout", "--quiet", "--detach", ref, "--", cwd=dest, ref=ref)
    else:
        local("checkout", "--quiet", "--detach", "FETCH_HEAD", cwd=dest)
    return local("rev-parse", "HEAD", cwd=dest).strip()


def _explained(
    exc: SourceError,
    scheme: str,
    host: str,
    port: int,
    access: GitAccess | None,
    auth: gitauth.Session,
    pinning: list[str],
) -> SourceError:
    """The failure in the project's terms: what to do about access; for a changed host key,
    the host and both fingerprints (the key offered now is read with a second connection)."""
    if exc.kind == "access" and (hint := gitauth.access_hint(access, scheme)):
        return SourceError(f"{exc}: {hint}", exc.kind)
    if exc.kind != "trust" or scheme != "ssh":
        return exc
    if settings.PORTAL_GIT_KNOWN_HOSTS:
        return SourceError(
            f"the SSH host key of {host}:{port} does not match PORTAL_GIT_KNOWN_HOSTS; "
            "nothing was built",
            exc.kind,
        )
    pinned = gitauth.pinned_key(access.team_id if access else None, host, port)
    if pinned is None:
        return exc
    offered = gitauth.offered_fingerprint(host, port, pinning, auth.folder)
    before = gitaccess.host_key_fingerprint(pinned)
    return SourceError(
        f"the SSH host key of {host}:{port} changed: the team pinned {before}, the server "
        f"now offers {offered or 'an unknown key'}; nothing was built. If the server's key "
        "really changed, an operator removes the pinned key (admin: Pinned host keys)",
        exc.kind,
    )


def ref_advertised(url: str, ref: str, access: GitAccess, folder: Path) -> bool | None:
    """Whether the repository at `url` has the branch or tag `ref` (`git ls-remote`, through
    the outbound guard and `access` as a fetch is): True or False when the server answered,
    None when it could not be asked (unreachable, refused, a commit SHA, which servers do not
    list)."""
    if SHA_RE.match(ref):
        return None
    try:
        check_file_url(url)
        where = destination(url)
        config, ssh_options = _pinning(url, where)
        scheme = urlsplit(url).scheme.lower()
        host, port = (where.host, where.port) if where else ("", 0)
        with gitauth.session(scheme, host, port, access, folder) as auth:
            out = _git(
                "ls-remote",
                "--heads",
                "--tags",
                "--",
                url,
                ref,
                env=auth.env,
                config=[*auth.config, *config],
                ssh_options=[*auth.ssh_options, *ssh_options],
                timeout=30,
                ref=ref,
            )
    except (SourceError, outbound.Refused) as exc:
        logger.info("ls-remote %s %s: not checked (%s)", url, ref, exc)
        return None
    names = {line.split("\t", 1)[1].strip() for line in out.splitlines() if "\t" in line}
    return bool(names & {f"refs/heads/{ref}", f"refs/tags/{ref}", ref})


def fetched_tag(dest: Path) -> str | None:
    """The git tag a `fetch` into `dest` checked out, or None for a branch or a commit: a
    branch that happens to be called v1.2.3 is not a release."""
    try:
        record = (dest / ".git" / "FETCH_HEAD").read_text(errors="replace")
    except OSError:
        return None
    match = _FETCHED_TAG.match(record)
    return match.group(1) if match else None
