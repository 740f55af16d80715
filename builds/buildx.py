"""The choke point for `docker buildx build`: the argument list and the process around it.

Every value reaches buildx as its own argv element in `--flag=value` form, and the build context
comes after `--`, so no value can become an extra option. The process runs in its own session so
cancel can interrupt (SIGINT, buildx then cancels the solve) and later kill the whole group.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from builds.proc import die_with_parent, kill_group


@dataclass(frozen=True)
class BuildSpec:
    context: Path
    dockerfile: Path
    platforms: list[str]
    tags: list[str]
    metadata_file: Path
    docker_host: str = ""
    network: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False

    def argv(self) -> list[str]:
        argv = [
            settings.PORTAL_DOCKER_CLI,
            "buildx",
            "build",
            "--progress=rawjson",
            "--push",
            f"--platform={','.join(self.platforms)}",
            f"--file={self.dockerfile}",
            f"--metadata-file={self.metadata_file}",
        ]
        if self.network:
            argv.append(f"--network={self.network}")
        if self.no_cache:
            argv.append("--no-cache")
        argv += [f"--tag={tag}" for tag in self.tags]
        argv += [f"--label={key}={value}" for key, value in sorted(self.labels.items())]
        argv += [f"--annotation={k}={v}" for k, v in sorted(self.annotations.items())]
        argv += ["--", str(self.context)]
        return argv

    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LC_ALL": "C.UTF-8",
        }
        if "DOCKER_CONFIG" in os.environ:
            env["DOCKER_CONFIG"] = os.environ["DOCKER_CONFIG"]
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        return env

    def read_metadata(self) -> dict[str, object]:
        try:
            data = json.loads(self.metadata_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


class BuildxProcess:
    """A running buildx. Iterate `output()` for stdout+stderr chunks; None marks an idle tick."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (only async-signal-safe calls)
        )
        self.interrupted_at: float | None = None

    def output(self, tick: float = 1.0) -> Iterator[bytes | None]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            ready, _, _ = select.select([fd], [], [], tick)
            if not ready:
                yield None
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            yield chunk

    def _signal_group(self, sig: signal.Signals) -> None:
        kill_group(self.proc.pid, sig)

    def interrupt(self) -> None:
        if self.interrupted_at is None:
            self.interrupted_at = time.monotonic()
            self._signal_group(signal.SIGINT)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    def escalate(self, grace: float) -> None:
        """After an interrupt, kill the process group once the grace period is over."""
        if self.interrupted_at is not None and time.monotonic() - self.interrupted_at > grace:
            self.kill()

    def wait(self) -> int:
        code = self.proc.wait()
        # buildx may leave helpers in its group; nothing of a finished build keeps running.
        self._signal_group(signal.SIGKILL)
        return code


def run(
    spec: BuildSpec,
    on_output: Callable[[bytes], None],
    should_stop: Callable[[], bool],
    grace: float,
) -> int:
    """Run buildx to the end, feeding output to `on_output`; `should_stop` is asked every tick."""
    process = BuildxProcess(spec.argv(), spec.env(), cwd=spec.context)
    try:
        for chunk in process.output():
            if chunk is not None:
                on_output(chunk)
            if should_stop():
                process.interrupt()
            process.escalate(grace)
    finally:
        if process.proc.poll() is None:
            process.kill()  # an exception (e.g. the lease was lost): leave nothing running
        code = process.wait()
    return code
