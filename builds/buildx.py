"""The choke point for `docker buildx build`: the argument list and the process around it.

Every value reaches buildx as its own argv element in `--flag=value` form, and the build context
comes after `--`, so no value can become an extra option. The process runs in its own session so
cancel can interrupt (SIGINT, buildx then cancels the solve) and later kill the whole group.
"""

from __future__ import annotations

import csv
import io
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from builds.models import Build
from builds.proc import die_with_parent, docker_cli_env, kill_group
from portal import tagging
from portal.grammar.git import without_userinfo

# BuildKit prefixes every cache mount's id with this build arg (the frontend attribute
# `build-arg:BUILDKIT_CACHE_MOUNT_NS`): the portal sets it to the team's opaque id.
CACHE_NS_ARG = "BUILDKIT_CACHE_MOUNT_NS"


@dataclass(frozen=True)
class BuildSpec:
    context: Path
    dockerfile: Path
    platforms: list[str]
    tags: list[str]
    metadata_file: Path
    docker_host: str = ""
    cert_path: Path | None = None  # DOCKER_CERT_PATH for a node with mutual TLS
    builder: str = ""  # a named buildx builder (then docker_config holds it, no docker_host)
    docker_config: str = ""
    network: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    secrets: dict[str, Path] = field(default_factory=dict)  # BuildKit secret id -> 0600 file
    build_args: dict[str, str] = field(default_factory=dict)
    push_once: bool = False  # the engine keeps its images in containerd (see argv)
    provenance: str = ""  # e.g. "mode=max": a provenance attestation in the pushed index
    sbom_generator: str = ""  # the scanner image BuildKit runs for an SBOM attestation
    cache_ref: str = ""  # a registry layer cache, read before and written after (mode=max)

    def argv(self) -> list[str]:
        argv = [
            settings.PORTAL_DOCKER_CLI,
            "buildx",
            "build",
            "--progress=rawjson",
            # An engine that keeps its images in containerd pushes from BuildKit itself, and
            # buildx before 0.21 (docker/buildx#3023) then pushes every tag again through the
            # engine, which PUTs each platform's manifest to the tag at once: the tag names one
            # platform meanwhile, and a filesystem registry answers a HEAD racing those PUTs
            # with 500. BuildKit reads an empty `push=` as true; buildx repeats only a push
            # whose value parses as true.
            "--output=type=image,push=" if self.push_once else "--push",
            f"--platform={','.join(self.platforms)}",
            f"--file={self.dockerfile}",
            f"--metadata-file={self.metadata_file}",
        ]
        if self.builder:
            argv.append(f"--builder={self.builder}")
        if self.network:
            argv.append(f"--network={self.network}")
        if self.no_cache:
            argv.append("--no-cache")
        if self.provenance:
            argv.append(f"--provenance={self.provenance}")
        if self.sbom_generator:
            argv.append(f"--sbom=generator={self.sbom_generator}")
        if self.cache_ref:
            ref = csv_field(f"ref={self.cache_ref}")
            argv.append(f"--cache-from=type=registry,{ref}")
            # Every intermediate stage (mode=max), as an OCI image manifest (registries that
            # take images take it); a cache that cannot be written never fails the build.
            argv.append(
                f"--cache-to=type=registry,{ref},mode=max,image-manifest=true,"
                "oci-mediatypes=true,ignore-error=true"
            )
        argv += [
            f"--secret={csv_field(f'id={name}')},{csv_field(f'src={path}')}"
            for name, path in sorted(self.secrets.items())
        ]
        argv += [f"--build-arg={key}={value}" for key, value in sorted(self.build_args.items())]
        argv += [f"--tag={tag}" for tag in self.tags]
        argv += [f"--label={key}={value}" for key, value in sorted(self.labels.items())]
        argv += [f"--annotation={k}={v}" for k, v in sorted(self.annotations.items())]
        argv += ["--", str(self.context)]
        return argv

    def env(self) -> dict[str, str]:
        env = docker_cli_env(self.docker_config) | {"LC_ALL": "C.UTF-8"}
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        if self.cert_path is not None:
            env |= {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.cert_path)}
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
    specs: list[BuildSpec],
    on_output: Callable[[int, bytes], None],
    should_stop: Callable[[], bool],
    grace: float,
    on_exit: Callable[[int, int], None] | None = None,
) -> list[int]:
    """Run one buildx per spec at once, to the end; returns their exit codes in order.

    One thread reads them all (poll over their pipes) and calls `on_output(index, chunk)`;
    `should_stop` is asked every tick, `on_exit(index, code)` told as each one ends. When one
    fails, the others are interrupted: the build
    has failed, and nothing of it keeps running.
    """
    processes: list[BuildxProcess] = []
    codes: list[int | None] = [None] * len(specs)
    try:
        for spec in specs:  # inside the try: if one cannot start, the started ones are killed
            processes.append(BuildxProcess(spec.argv(), spec.env(), cwd=spec.context))
        pipes = {p.proc.stdout.fileno(): i for i, p in enumerate(processes) if p.proc.stdout}
        # poll, not select: select() refuses descriptors past 1024, which a long-lived worker
        # (or test process) holding many connections reaches.
        poller = select.poll()
        for fd in pipes:
            poller.register(fd, select.POLLIN)
        while pipes:
            ready = [fd for fd, _ in poller.poll(1000)]
            for fd in ready:
                index = pipes[fd]
                chunk = os.read(fd, 65536)
                if chunk:
                    on_output(index, chunk)
                    continue
                del pipes[fd]
                poller.unregister(fd)
                codes[index] = code = processes[index].wait()
                if on_exit is not None:
                    on_exit(index, code)
                if code != 0:
                    for other in processes:
                        if other.proc.poll() is None:
                            other.interrupt()
            if should_stop():
                for process in processes:
                    process.interrupt()
            for process in processes:
                process.escalate(grace)
    finally:
        for index, process in enumerate(processes):
            if process.proc.poll() is None:
                process.kill()  # an exception (e.g. the lease was lost): leave nothing running
            if codes[index] is None:
                codes[index] = process.wait()
    return [code if code is not None else -1 for code in codes]


def csv_field(text: str) -> str:
    """One field of a comma-separated buildx value (--secret), quoted when it must be."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([text])
    return out.getvalue()


def oci_facts(build: Build) -> dict[str, str]:
    """What a build's images say about themselves (OCI labels on each image config, and
    annotations on the index): the source without credentials, the commit, the title, the
    semver tag when there is one, when."""
    project = build.project
    facts = {
        "org.opencontainers.image.source": without_userinfo(project.git_url),
        "org.opencontainers.image.revision": build.commit,
        "org.opencontainers.image.title": project.name,
        "org.opencontainers.image.version": tagging.version(build.tags),
        "org.opencontainers.image.created": (build.started_at or timezone.now()).isoformat(),
    }
    return {key: value for key, value in facts.items() if value}
