"""Running external programs (git, docker) for a build: argv lists only, no shell, each in its
own process group that is killed whole on timeout or stop, and tied to the worker's life.

`tick` is called about once a second while the program runs, so the worker keeps renewing its
lease and notices a cancel even during a long clone or registry call.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1
_SIG_DFL = 0
_prctl: Any
_signal: Any
try:  # looked up once here: the child may only make async-signal-safe calls after fork
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl, _signal = _libc.prctl, _libc.signal
except (OSError, AttributeError):  # not Linux
    _prctl = _signal = None


def die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the thread that started it dies, so a killed worker
    leaves nothing running (its build is then failed by the reaper). Also give it the default
    SIGINT action: a server started in the background (nohup, `&` in a script) ignores SIGINT,
    children would inherit that, and cancel could then only kill buildx, never interrupt it."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if _signal is not None:
        _signal(signal.SIGINT, _SIG_DFL)


def docker_cli_env(docker_config: str = "") -> dict[str, str]:
    """The environment every docker CLI call gets: PATH and HOME, the docker config folder
    (the given one, else the operator's), and the operator's TLS trust for registries."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
    }
    if docker_config or "DOCKER_CONFIG" in os.environ:
        env["DOCKER_CONFIG"] = docker_config or os.environ["DOCKER_CONFIG"]
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


class ProcessTimeout(Exception):
    pass


class ProcessStopped(Exception):
    """`tick` asked to stop (cancel or timeout of the whole build)."""


def kill_group(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def run(
    argv: list[str],
    *,
    env: dict[str, str],
    timeout: float,
    cwd: Path | None = None,
    tick: Callable[[], bool] | None = None,
    umask: int = -1,
) -> subprocess.CompletedProcess[bytes]:
    """Run to completion; raise ProcessTimeout / ProcessStopped after killing the group."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (calls only prctl)
            umask=umask,  # -1: the portal's own (077)
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    code = proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        raise ProcessTimeout(
                            f"{Path(argv[0]).name} timed out after {timeout:.0f}s"
                        ) from None
                    if tick is not None and tick():
                        raise ProcessStopped() from None
        except BaseException:
            kill_group(proc.pid)
            proc.wait()
            raise
        kill_group(proc.pid)  # helpers it left behind (e.g. git-remote-https)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, code, out.read(), err.read())
